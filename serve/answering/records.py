"""What goes into the audit trail for a question: its answer, or why it got none.

An answer's record holds everything an auditor needs to reconstruct it years later: who
asked (user, groups, roles), the question and the turns before it, the settings the
answer ran with (taken from the run, not from today's configuration), how it was
streamed, every retrieved chunk (ids, version, content hash, score, whether the model
saw it), the model and prompt version, the outcome and the answer exactly as shown, each
citation with its verification, each sentence's check and the timings. The passage texts
themselves go to the audit's text store, keyed by the hashes the record holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.audit import ANSWER, Event, Passage, text_hash
from core.errors import one_line
from core.names import storable
from core.types import Answer, Principal
from serve.answering.exchange import Exchange

# Kinds of records besides ANSWER. Admin actions are named after what they did.
ANSWER_FAILED = "answer.failed"
ANSWER_WITHHELD = "answer.withheld"
ANSWER_REJECTED = "answer.rejected"  # a question refused as invalid (HTTP 4xx, CLI exit 2)


def principal_json(principal: Principal) -> dict[str, Any]:
    return {"user_id": principal.user_id, "groups": list(principal.groups),
            "roles": list(principal.roles)}


def _context(principal: Principal, exchange: Exchange) -> dict[str, Any]:
    return {
        "channel": exchange.channel,
        "principal": principal_json(principal),
        "conversation_id": exchange.conversation_id,
        "history": [{"question": t.question, "answer": t.answer} for t in exchange.history],
        "question": exchange.question,
        "streaming": exchange.streaming,
    }


def answer_event(principal: Principal, exchange: Exchange, answer: Answer) -> Event:
    shown = set(answer.shown)
    retrieved = [
        {"rank": rank, "chunk_id": h.chunk.chunk_id, "doc_id": h.chunk.doc_id,
         "version": h.chunk.version, "source": h.chunk.source, "page": h.chunk.page_start,
         "char_start": h.chunk.char_start, "char_end": h.chunk.char_end,
         "score": round(float(h.score), 6), "text_sha256": text_hash(h.chunk.text),
         "shown": h.chunk.chunk_id in shown}
        for rank, h in enumerate(answer.retrieved, 1)
    ]
    by_chunk = {r["chunk_id"]: r["text_sha256"] for r in retrieved}
    citations = [
        {"n": c.n, "chunk_id": c.chunk_id, "doc_id": c.doc_id, "version": c.version,
         "source": c.source, "display": c.display, "page": c.page, "quote": c.quote,
         "start": c.start, "end": c.end,
         "supported": c.supported, "ocr": c.ocr, "text_sha256": by_chunk.get(c.chunk_id)}
        for c in answer.citations
    ]
    checks = [
        {"text": c.text, "cited": list(c.cited), "supported": c.supported, "score": c.score,
         "attributed": c.attributed, "kept": c.kept}
        for c in answer.checks
    ]
    ran = answer.ran_with
    body = {
        **_context(principal, exchange),
        "retrieval": {**ran.get("retrieval", {}), **ran.get("relevance", {})},
        "generation": {**ran.get("answer", {}), "prompt_version": ran.get("prompt_version"),
                       **ran.get("generation", {})},
        "standalone_question": answer.standalone_question,
        "retrieved": retrieved,
        "model": answer.model,
        "outcome": answer.outcome,
        "answer": answer.text,
        "refused": answer.refused,
        "refusal_reason": answer.refusal_reason or None,
        "citations": citations,
        "checks": checks,
        "timings": dict(answer.timings),
        "usage": dict(answer.usage),
    }
    passages = [Passage(h.chunk.chunk_id, h.chunk.doc_id, h.chunk.version, h.chunk.source,
                        h.chunk.text) for h in answer.retrieved]
    unsupported = sum(not c.supported for c in answer.checks)
    return Event(ANSWER, principal.user_id, body, question=exchange.question,
                 answer=answer.text, refused=answer.refused, unsupported=unsupported,
                 passages=passages)


def failure_event(principal: Principal, exchange: Exchange, exc: BaseException,
                  shown: Sequence[str] = (), withheld: bool = False) -> Event:
    """A question that got no answer: the model failed, the client went away, or the answer
    failed its access check. ``shown``: the sentences a stream had sent before it stopped."""
    body = {**_context(principal, exchange), "error": type(exc).__name__,
            "detail": one_line(exc), "shown": list(shown)}
    return Event(ANSWER_WITHHELD if withheld else ANSWER_FAILED, principal.user_id, body,
                 question=exchange.question)


def rejection_event(principal: Principal, channel: str, question: str,
                    exc: BaseException) -> Event:
    """A question refused before any answer: what was sent, made storable (a lone surrogate
    or a control character is kept as an escape), and why it was refused."""
    text = storable(question)
    body = {"channel": channel, "principal": principal_json(principal), "question": text,
            "error": type(exc).__name__, "detail": storable(one_line(exc))}
    return Event(ANSWER_REJECTED, principal.user_id, body, question=text)
