"""Answers as the CLI shows them: the JSON of the contract in DESIGN.md, and plain text."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from core.types import Answer


def answer_json(answer: Answer, *, checks: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "answer": answer.text,
        "outcome": answer.outcome,
        "refused": answer.refused,
        "citations": [
            {
                "n": c.n,
                "doc_id": c.doc_id,
                "version": c.version,
                "source": c.source,
                "page": c.page,
                "quote": c.quote,
                "start": c.start,
                "end": c.end,
                "supported": c.supported,
                "ocr": c.ocr,
            }
            for c in answer.citations
        ],
        "model": answer.model,
        "timings": dict(answer.timings),
    }
    if checks:
        data["sentences"] = [asdict(c) for c in answer.checks]
        data["standalone_question"] = answer.standalone_question
    return data


def answer_lines(answer: Answer, quote_chars: int = 200, checks: bool = False) -> list[str]:
    """The answer, its sources with their quotes, and optionally every sentence's check."""
    lines = answer.text.splitlines()
    if answer.outcome == "unverified":
        lines.insert(0, "UNVERIFIED: not an answer")
    if answer.citations and not answer.refused:
        lines.append("")
        lines.append("Sources:")
        for c in answer.citations:
            page = f", page {c.page}" if c.page else ""
            mark = "" if c.supported else "  (NOT SUPPORTED)"
            quote = " ".join(c.quote.split())
            if len(quote) > quote_chars:
                quote = quote[: quote_chars - 1] + "…"
            lines.append(f"[{c.n}] {c.source}{page}, characters {c.start}-{c.end}{mark}")
            lines.append(f'    "{quote}"')
    if checks and answer.checks:
        lines.append("")
        lines.append("Checks of the model's sentences:")
        for check in answer.checks:
            state = "supported" if check.supported else "UNSUPPORTED"
            extra = ", citation attached by verification" if check.attributed else ""
            extra += "" if check.kept else ", dropped"
            lines.append(f"  {state} ({check.score:.2f}{extra}): {check.text}")
    return lines
