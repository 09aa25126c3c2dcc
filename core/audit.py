"""The audit trail: every answer and every admin action, hash-chained, with the texts it cited.

Records are numbered 1, 2, 3 ... with no gaps. Each carries the hash of the one before it
and a hash of its own content (SHA-256 of canonical JSON), so changing a record, removing
one, or cutting the tail off is found by walking the chain (``verify``). The head of the
chain (its last seq and hash) is kept in a one-row table that every append locks, which
serialises writers in both databases (a row lock in PostgreSQL, the write lock in SQLite)
and lets ``verify`` notice a truncated tail. Someone who can write to the database can
still rewrite the whole chain and its head; against that, each record is sealed (signed
with a key kept outside the database) and checkpoints of the head, signed, go to a file
outside it (``core.audit_seal``).

Passage texts are kept apart from the records (``core.audit_texts``); records hold only
their hashes, which ``verify`` compares them with.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, Integer, String, Text, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from core import audit_texts as kept
from core.audit_checkpoints import Sealing
from core.audit_filters import FEEDBACK_FILTERS as FEEDBACK_FILTERS
from core.audit_filters import Filters as Filters
from core.audit_filters import conditions
from core.audit_seal import CHECKPOINT_KIND
from core.audit_texts import Passage, StoredText
from core.audit_texts import text_hash as text_hash  # where callers have always found it
from core.db import Base, Database
from core.errors import EnclaveError, NotFound, RegistryError

if TYPE_CHECKING:
    from core.audit_verify import Verification

GENESIS = "0" * 64
# The fields a record's hash covers, in the order exports write them.
HASHED = ("seq", "record_id", "kind", "at", "actor", "refused", "unsupported", "question",
          "answer", "body", "prev_hash")
ANSWER = "answer"  # the kind of an answered (or refused) question
CHECKPOINT = "audit.checkpoint"
_BATCH = 500

log = logging.getLogger("enclave.audit")


def now_iso() -> str:
    """UTC with microseconds; sorts as text in both databases, and hashes the same."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def record_hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({k: fields[k] for k in HASHED})).hexdigest()


class AuditRow(Base):
    __tablename__ = "audit_records"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    record_id: Mapped[str] = mapped_column(String(36), unique=True)
    kind: Mapped[str] = mapped_column(String(60), index=True)
    at: Mapped[str] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(200), index=True)
    refused: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    unsupported: Mapped[int] = mapped_column(Integer, default=0)
    question: Mapped[str | None] = mapped_column(Text, nullable=True)
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    body: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # "<key id>:<signature of seq and hash>", not hashed itself (migration 0006).
    seal: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditHeadRow(Base):
    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


@dataclass(frozen=True, slots=True)
class Event:
    """What a caller hands to ``append``; the book numbers, stamps and chains it."""

    kind: str
    actor: str
    body: Mapping[str, Any]
    question: str | None = None
    answer: str | None = None
    refused: bool | None = None
    unsupported: int = 0
    passages: Sequence[Passage] = ()


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    record_id: str
    kind: str
    at: str
    actor: str
    refused: bool | None
    unsupported: int
    question: str | None
    answer: str | None
    body: dict[str, Any]
    prev_hash: str
    hash: str
    seal: str | None = None  # not hashed: it signs the hash

    def fields(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in HASHED}

    @classmethod
    def of(cls, row: AuditRow) -> Record:
        return cls(row.seq, row.record_id, row.kind, row.at, row.actor, row.refused,
                   row.unsupported, row.question, row.answer, json.loads(row.body),
                   row.prev_hash, row.hash, row.seal)


class AuditLog:
    def __init__(self, db: Database, sealing: Sealing | None = None) -> None:
        self.db = db
        # None: records are chained but not sealed, and no checkpoint file is written (the
        # bench's baseline; tests of the chain alone).
        self.sealing = sealing

    # -- writing -----------------------------------------------------------------------------

    def append(self, event: Event) -> Record:
        """Number, chain, seal and store one record, with the texts it refers to, in one
        transaction; then write a checkpoint if one is due."""
        record = self._append(event)
        if self.sealing is not None and self.sealing.checkpoints.due(record.seq):
            try:
                self.sealing.checkpoints.write(self._checkpoint_record("enclave", "auto"),
                                               record.seq)
            except (OSError, EnclaveError) as exc:
                # The record stands, and the next append tries again; failing the caller
                # would not undo it. The error's type only: its text may quote the record.
                log.error("could not write the audit checkpoint to %s (%s)",
                          self.sealing.checkpoints.path, type(exc).__name__)
        return record

    def checkpoint(self, actor: str, channel: str) -> dict[str, Any]:
        """A checkpoint now: a record of it, then the chain's head with that very record
        (signed, and in the checkpoint file when sealing)."""
        if self.sealing is None:
            record = self._append(Event(CHECKPOINT, actor, {"channel": channel}))
            return checkpoint_of(record.seq, record.hash)
        line = self.sealing.checkpoints.write(self._checkpoint_record(actor, channel))
        assert line is not None  # one asked for is always written
        return line

    def _checkpoint_record(self, actor: str, channel: str) -> Callable[[str], tuple[int, str]]:
        def append(why: str) -> tuple[int, str]:
            body = {"channel": channel, **({"due": why} if channel == "auto" else {})}
            record = self._append(Event(CHECKPOINT, actor, body))
            return record.seq, record.hash

        return append

    def _append(self, event: Event) -> Record:
        body = json.loads(canonical(event.body))  # fails here on what JSON cannot hold
        with self.db.session() as s:
            # The write comes first: it takes the lock (the head row in PostgreSQL, the
            # database's write lock in SQLite) before the head is read.
            s.execute(update(AuditHeadRow).where(AuditHeadRow.id == 1)
                      .values(seq=AuditHeadRow.seq))
            head = s.get(AuditHeadRow, 1, populate_existing=True)
            if head is None:  # migration 0005 made it; only a hand in the database removes it
                raise RegistryError("the audit chain's head row is missing: "
                                    "run `enclave audit verify` and restore it from a backup")
            at = now_iso()  # taken under the lock, so times never run backwards along the chain
            fields = {
                "seq": head.seq + 1, "record_id": str(uuid.uuid4()), "kind": event.kind,
                "at": at, "actor": event.actor, "refused": event.refused,
                "unsupported": int(event.unsupported), "question": event.question,
                "answer": event.answer, "body": body, "prev_hash": head.hash,
            }
            digest = record_hash(fields)
            seal = self.sealing.key.seal(fields["seq"], digest) if self.sealing else None
            s.add(AuditRow(**{**fields, "body": canonical(body).decode("utf-8")}, hash=digest,
                           seal=seal))
            head.seq, head.hash = fields["seq"], digest
            kept.keep(s, event.passages, at)
            return Record(**fields, hash=digest, seal=seal)

    def purge_document(self, doc_id: str, reason: str) -> int:
        """Drop the kept texts of one document (a deletion for legal reasons)."""
        return kept.purge(self.db, now_iso(), f"legal: {reason}", doc_id=doc_id)

    def purge_expired(self, days: int) -> int:
        """Drop kept texts no record has referred to for ``days`` days."""
        cutoff = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return kept.purge(self.db, now_iso(), "retention", unused_since=cutoff)

    def expire(self, days: int, actor: str, channel: str, record_nothing: bool = False) -> int:
        """Retention: purge expired texts and record it (a run that purged nothing is
        recorded only when ``record_nothing``: a scheduled pass stays quiet)."""
        purged = self.purge_expired(days)
        if purged or record_nothing:
            self.append(Event("audit.retention", actor,
                              {"channel": channel, "days": days, "texts_purged": purged}))
        return purged

    # -- reading -----------------------------------------------------------------------------

    def get(self, record_id: str) -> Record:
        with self.db.session() as s:
            row = s.scalars(select(AuditRow).where(AuditRow.record_id == record_id)).first()
            if row is None:
                raise NotFound("no such audit record")
            return Record.of(row)

    def previous_hash(self, seq: int) -> str | None:
        """The stored hash of record ``seq - 1`` (GENESIS before the first); None if missing."""
        if seq <= 1:
            return GENESIS
        with self.db.session() as s:
            return s.scalar(select(AuditRow.hash).where(AuditRow.seq == seq - 1))

    def source_of(self, doc_id: str) -> str | None:
        """The source of a document the audit keeps texts of (it may be gone from the index)."""
        return kept.source_of(self.db, doc_id)

    def texts(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredText]:
        """Kept texts by (chunk_id, text_sha256)."""
        return kept.texts(self.db, keys)

    def records(self, filters: Filters, limit: int = 50, before: int | None = None) -> list[Record]:
        """Newest first; ``before``: only records with a smaller seq (the next page's cursor)."""
        with self.db.session() as s:
            query = select(AuditRow).where(*conditions(filters))
            if before is not None:
                query = query.where(AuditRow.seq < before)
            rows = s.scalars(query.order_by(AuditRow.seq.desc()).limit(limit)).all()
            return [Record.of(r) for r in rows]

    def scan(self, filters: Filters | None = None, until: int | None = None) -> Iterator[Record]:
        """Every matching record, oldest first, read in batches (for exports and verify);
        ``until``: none past that seq."""
        after = 0
        where = conditions(filters or Filters())
        if until is not None:
            where.append(AuditRow.seq <= until)
        while True:
            with self.db.session() as s:
                rows = s.scalars(select(AuditRow).where(AuditRow.seq > after, *where)
                                 .order_by(AuditRow.seq).limit(_BATCH)).all()
                batch = [Record.of(r) for r in rows]
            if not batch:
                return
            yield from batch
            after = batch[-1].seq

    def head(self) -> tuple[int, str]:
        with self.db.session() as s:
            row = s.get(AuditHeadRow, 1)
            return (row.seq, row.hash) if row else (0, GENESIS)

    def count(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(AuditRow)) or 0)

    def verify(self, checkpoint: Mapping[str, Any] | None = None) -> Verification:
        """Walk the whole chain: links, hashes, the head, the kept texts, and when sealing,
        every seal and every line of the checkpoint file (``core.audit_verify``)."""
        from core.audit_verify import verify_log  # it builds on this module

        return verify_log(self, checkpoint)


def checkpoint_of(seq: int, digest: str) -> dict[str, Any]:
    """An unsigned checkpoint, from a log that does not seal."""
    return {"kind": CHECKPOINT_KIND, "seq": seq, "hash": digest, "at": now_iso()}
