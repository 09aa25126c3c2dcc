"""The audit API's response bodies; audit records are converted here, at the edge."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from core.audit import ANSWER, AuditLog, Record, StoredText, record_hash
from core.audit_seal import KeyRing
from core.audit_verify import Problem, Verification
from core.feedback import Feedback, feedback_on
from serve.http.feedback_schemas import FeedbackOut


class AuditSummary(BaseModel):
    seq: int
    record_id: str
    at: str
    kind: str
    actor: str
    question: str | None
    answer: str | None
    refused: bool | None
    # An answer's outcome: answered, not_found or unverified (records from before outcomes
    # existed: answered or null, from refused).
    outcome: str | None
    unsupported: int
    citations: int
    hash: str
    # An answer's latest rating by its asker (up or down); null: none, or not an answer.
    feedback: str | None = None

    @classmethod
    def of(cls, r: Record, feedback: str | None = None) -> AuditSummary:
        outcome = r.body.get("outcome")
        if outcome is None and r.kind == ANSWER:
            outcome = None if r.refused else "answered"
        return cls(seq=r.seq, record_id=r.record_id, at=r.at, kind=r.kind, actor=r.actor,
                   question=r.question, answer=r.answer, refused=r.refused, outcome=outcome,
                   unsupported=r.unsupported, citations=len(r.body.get("citations", ())),
                   hash=r.hash, feedback=feedback)


class AuditList(BaseModel):
    records: list[AuditSummary]
    # Pass as ``before`` for the next (older) page; null on the last page.
    next_before: int | None


class PassageText(BaseModel):
    """A retrieved or cited passage's text as it was at the recorded version."""

    chunk_id: str
    doc_id: str
    version: str
    source: str
    text_sha256: str
    rank: int | None  # its place in the retrieval, if retrieved
    cited_as: list[int]  # the citation numbers that point at it
    text: str | None  # null once purged; then purged_at and purge_reason say why
    purged_at: str | None
    purge_reason: str | None
    # The kept text still hashes to text_sha256; false: it was altered since (the text shown
    # is not what was retrieved); null: purged, or not kept.
    intact: bool | None


class RecordCheck(BaseModel):
    content_intact: bool  # the record's content still matches its hash
    linked: bool | None  # its previous-hash matches the record before it (null: that one is gone)
    # Its seal (a signature of its seq and hash) holds; null: not sealed, or no keys to check.
    sealed: bool | None
    texts_intact: bool  # no passage's kept text was altered or is missing (purged ones are fine)


class AuditDetail(AuditSummary):
    prev_hash: str
    seal: str | None
    body: dict[str, Any]
    check: RecordCheck
    passages: list[PassageText]
    # An answer's latest feedback from its asker (each one is an answer.feedback record too).
    latest_feedback: FeedbackOut | None = None

    @classmethod
    def load(cls, book: AuditLog, record_id: str) -> AuditDetail:
        """A record with its own check, the kept texts of the passages it retrieved and,
        for an answer, its latest feedback."""
        found = book.get(record_id)
        keys = [(p["chunk_id"], p["text_sha256"]) for p in found.body.get("retrieved", ())]
        feedback = feedback_on(book, found.record_id) if found.kind == ANSWER else None
        return cls.build(found, book.previous_hash(found.seq), book.texts(keys),
                         book.sealing.keys if book.sealing else None, feedback)

    @classmethod
    def build(cls, r: Record, previous: str | None, texts: dict[tuple[str, str], StoredText],
              keys: KeyRing | None = None, feedback: Feedback | None = None) -> AuditDetail:
        cited: dict[str, list[int]] = {}
        for c in r.body.get("citations", ()):
            cited.setdefault(c["chunk_id"], []).append(c["n"])
        passages = []
        for p in r.body.get("retrieved", ()):
            kept = texts.get((p["chunk_id"], p["text_sha256"]))
            passages.append(PassageText(
                chunk_id=p["chunk_id"], doc_id=p["doc_id"], version=p["version"],
                source=p["source"], text_sha256=p["text_sha256"], rank=p["rank"],
                cited_as=cited.get(p["chunk_id"], []), text=kept.text if kept else None,
                purged_at=kept.purged_at if kept else None,
                purge_reason=(kept.purge_reason if kept else "not kept"),
                intact=kept.intact if kept else None,
            ))
        sealed = None
        if r.seal is not None and keys is not None:
            sealed = keys.check_seal(r.seal, r.seq, r.hash) is None
        check = RecordCheck(
            content_intact=record_hash(r.fields()) == r.hash,
            linked=None if previous is None else previous == r.prev_hash, sealed=sealed,
            texts_intact=all(p.intact is not False and p.purge_reason != "not kept"
                             for p in passages))
        summary = AuditSummary.of(r, feedback.rating if feedback else None)
        return cls(**summary.model_dump(), prev_hash=r.prev_hash, seal=r.seal, body=r.body,
                   check=check, passages=passages,
                   latest_feedback=FeedbackOut.of(feedback) if feedback else None)


class ProblemOut(BaseModel):
    seq: int
    record_id: str | None
    reason: str

    @classmethod
    def of(cls, p: Problem) -> ProblemOut:
        return cls(seq=p.seq, record_id=p.record_id, reason=p.reason)


class VerifyOut(BaseModel):
    intact: bool
    records: int
    head_seq: int
    head_hash: str
    sealed: int  # records whose seal holds
    checkpoints: int  # lines of the checkpoint file that the chain still matches
    texts: int  # kept texts checked against their hashes
    first_broken: ProblemOut | None
    problems: list[ProblemOut]  # the first 100

    @classmethod
    def of(cls, v: Verification) -> VerifyOut:
        problems = [ProblemOut.of(p) for p in v.problems[:100]]
        return cls(intact=v.intact, records=v.records, head_seq=v.head_seq,
                   head_hash=v.head_hash, sealed=v.sealed, checkpoints=v.checkpoints,
                   texts=v.texts, first_broken=problems[0] if problems else None,
                   problems=problems)


class CheckpointOut(BaseModel):
    """The chain's head with the checkpoint's own record; key_id and signature when sealed."""

    kind: str
    seq: int
    hash: str
    at: str
    key_id: str | None = None
    signature: str | None = None
