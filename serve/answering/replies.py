"""The two replies that are not answers, in words that say which one it is.

- ``not_found``: no passage the asker may read is relevant enough. The reply says the
  documents do not answer and lists the closest passages, for orientation.
- ``unverified``: relevant passages exist, but no sentence of the model's answer could be
  verified against them. Saying "the documents do not answer" would be false (the answer
  may be right there), so the reply says what happened and quotes, verbatim and labelled
  as quotes, the passages' sentences closest to the question.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from core.types import Citation, Hit
from serve.answering.compose import Verified, citation
from serve.answering.extract import MIN_ANSWER_WORDS
from serve.answering.verify import PassageIndex, Verifier

NOT_FOUND = "The documents you can access do not answer this question."
UNVERIFIED = ("Relevant passages were found, but no sentence of the model's answer could be "
              "verified against them. The passages' sentences closest to the question, quoted "
              "verbatim (quotes, not an answer):")


def not_found(verifier: Verifier, hits: Sequence[Hit], index: PassageIndex,
              question: str) -> tuple[str, tuple[Citation, ...]]:
    """The reply when nothing is relevant enough, with up to three closest passages."""
    closest: list[Citation] = []
    lines = [NOT_FOUND]
    if hits:
        lines.append("Closest passages:")
        matches = verifier.best_per_passage(question, index, MIN_ANSWER_WORDS)
        for hit, match in zip(hits[:3], matches, strict=False):
            if match is None:
                continue
            c = citation(len(closest) + 1, hit.chunk, match.start, match.end, False)
            closest.append(c)
            lines.append(f'[{c.n}] {c.display}{_page(c)}: "{_short(c.quote)}"')
    return "\n".join(lines), tuple(closest)


def unverified(index: PassageIndex, quotes: Sequence[Verified]) -> tuple[str, tuple[Citation, ...]]:
    """The reply when no sentence of the model's could be verified: quotes, not claims."""
    cited: list[Citation] = []
    lines = [UNVERIFIED]
    for quote in quotes:
        assert quote.match is not None  # a verbatim sentence knows where it stands
        chunk = index.chunks[quote.match.passage]
        c = citation(len(cited) + 1, chunk, quote.match.start, quote.match.end, False)
        cited.append(c)
        lines.append(f'[{c.n}] "{_short(c.quote, 400)}" ({c.display}{_page(c)})')
    return "\n".join(lines), tuple(cited)


def _page(c: Citation) -> str:
    return f", page {c.page}" if c.page else ""


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Clock:
    """Seconds spent in each stage of an answer; stages may be visited more than once."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(self.laps.get(name, 0.0) + now - self.last, 4)
        self.last = now

    def done(self) -> dict[str, float]:
        laps = {k: v for k, v in self.laps.items() if v > 0}
        laps["total"] = round(time.perf_counter() - self.start, 4)
        return laps
