"""What goes into the audit trail: answers (and refusals, and failures) and admin actions.

An answer's record holds everything an auditor needs to reconstruct it years later: who
asked (user, groups, roles), the question and the turns before it, the retrieval settings,
every retrieved chunk (ids, version, content hash, score, whether the model saw it), the
model and prompt version, the answer, each citation with its verification, each sentence's
check and the timings. The passage texts themselves go to the audit's text store, keyed by
the hashes the record holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.audit import ANSWER, Event, Passage, Record, text_hash
from core.container import Container
from core.errors import NotFound, one_line
from core.jobs import Job
from core.names import storable
from core.types import Answer, Principal
from serve.prompt import PROMPT_VERSION

if TYPE_CHECKING:
    from serve.answer import Turn

# Kinds of records besides ANSWER. Admin actions are named after what they did.
ANSWER_FAILED = "answer.failed"
ANSWER_WITHHELD = "answer.withheld"
ANSWER_REJECTED = "answer.rejected"  # a chat request refused as invalid (HTTP 4xx)


def principal_json(principal: Principal) -> dict[str, Any]:
    return {"user_id": principal.user_id, "groups": list(principal.groups),
            "roles": list(principal.roles)}


def _context(container: Container, principal: Principal, channel: str, question: str,
             history: Sequence[Turn], conversation_id: str | None) -> dict[str, Any]:
    s = container.settings
    return {
        "channel": channel,
        "principal": principal_json(principal),
        "conversation_id": conversation_id,
        "history": [{"question": t.question, "answer": t.answer} for t in history],
        "question": question,
        "retrieval": {
            "mode": "hybrid", "k": s.answer.passages, "fusion": s.search.fusion,
            "dense_weight": s.search.dense_weight, "prefetch": s.search.prefetch,
            "collection": s.qdrant.collection, "store": s.qdrant.mode,
            "embedding_model": container.embedder.name,
            "min_relevance": s.answer.min_relevance, "passage_margin": s.answer.passage_margin,
        },
        "generation": {
            "mode": s.answer.mode, "prompt_version": PROMPT_VERSION,
            "temperature": s.llm.temperature, "max_tokens": s.llm.max_tokens,
            "unsupported_policy": s.answer.unsupported, "min_support": s.answer.min_support,
        },
    }


def answer_event(container: Container, principal: Principal, channel: str, question: str,
                 history: Sequence[Turn], conversation_id: str | None, answer: Answer) -> Event:
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
         "supported": c.supported, "text_sha256": by_chunk.get(c.chunk_id)}
        for c in answer.citations
    ]
    checks = [
        {"text": c.text, "cited": list(c.cited), "supported": c.supported, "score": c.score,
         "attributed": c.attributed, "kept": c.kept}
        for c in answer.checks
    ]
    body = {
        **_context(container, principal, channel, question, history, conversation_id),
        "standalone_question": answer.standalone_question,
        "retrieved": retrieved,
        "model": answer.model,
        "answer": answer.text,
        "refused": answer.refused,
        "refusal_reason": answer.refusal_reason or None,
        "citations": citations,
        "checks": checks,
        "timings": dict(answer.timings),
    }
    passages = [Passage(h.chunk.chunk_id, h.chunk.doc_id, h.chunk.version, h.chunk.source,
                        h.chunk.text) for h in answer.retrieved]
    unsupported = sum(not c.supported for c in answer.checks)
    return Event(ANSWER, principal.user_id, body, question=question, answer=answer.text,
                 refused=answer.refused, unsupported=unsupported, passages=passages)


def failure_event(container: Container, principal: Principal, channel: str, question: str,
                  history: Sequence[Turn], conversation_id: str | None, exc: BaseException,
                  withheld: bool = False) -> Event:
    """A question that got no answer: the model failed, or the answer failed its access check."""
    body = {**_context(container, principal, channel, question, history, conversation_id),
            "error": type(exc).__name__, "detail": one_line(exc)}
    return Event(ANSWER_WITHHELD if withheld else ANSWER_FAILED, principal.user_id, body,
                 question=question)


def rejection_event(principal: Principal, channel: str, question: str,
                    exc: BaseException) -> Event:
    """A chat request refused before any answer: what was sent, made storable (a lone
    surrogate or a control character is kept as an escape), and why it was refused."""
    shown = storable(question)
    body = {"channel": channel, "principal": principal_json(principal), "question": shown,
            "error": type(exc).__name__, "detail": storable(one_line(exc))}
    return Event(ANSWER_REJECTED, principal.user_id, body, question=shown)


def record_answer(container: Container, principal: Principal, channel: str, question: str,
                  history: Sequence[Turn], conversation_id: str | None, answer: Answer) -> Record:
    """Write the answer's record; it must succeed before the answer is given."""
    return container.audit.append(
        answer_event(container, principal, channel, question, history, conversation_id, answer))


def record_admin(container: Container, actor: str, kind: str, channel: str,
                 **details: Any) -> Record:
    """An admin action (jobs, deletions, users and keys): who did what, through which door."""
    return container.audit.append(Event(kind, actor, {"channel": channel, **details}))


def record_job(container: Container, actor: str, kind: str, channel: str, job: Job,
               **extra: Any) -> Record:
    return record_admin(container, actor, kind, channel, job_id=job.job_id,
                        sources=list(job.sources), groups=list(job.groups), sync=job.sync,
                        **extra)


@dataclass(frozen=True, slots=True)
class Deletion:
    doc_id: str
    source: str
    texts_purged: int | None  # None unless a deletion for legal reasons
    turns_redacted: int | None = None  # stored conversation answers that cited it (legal)


# What a stored answer says once a document it cited was deleted for legal reasons.
REDACTED = "This answer was redacted: a document it cited was deleted for legal reasons."


def delete_document_recorded(container: Container, actor: str, channel: str, doc_id: str,
                             legal_reason: str | None) -> Deletion:
    """Delete a document and record it; for legal reasons, also purge the audit's kept texts
    and redact the stored conversation answers that cite it.

    A legal deletion also reaches a document already gone from the index whose texts the
    audit still keeps.
    """
    try:
        source = container.ingestor.delete_id(doc_id).source
    except NotFound:
        kept = container.audit.source_of(doc_id) if legal_reason is not None else None
        if kept is None:
            raise
        source = kept
    if legal_reason is None:
        record_admin(container, actor, "document.deleted", channel, doc_id=doc_id, source=source)
        return Deletion(doc_id, source, None)
    purged = container.audit.purge_document(doc_id, legal_reason)
    redacted = container.conversations.redact_citing(doc_id, REDACTED)
    record_admin(container, actor, "document.legal_deletion", channel, doc_id=doc_id,
                 source=source, reason=legal_reason, texts_purged=purged,
                 turns_redacted=redacted)
    return Deletion(doc_id, source, purged, redacted)
