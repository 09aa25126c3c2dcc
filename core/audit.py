"""The audit trail: every answer and every admin action, hash-chained, with the texts it cited.

Records are numbered 1, 2, 3 ... with no gaps. Each carries the hash of the one before it
and a hash of its own content (SHA-256 of canonical JSON), so changing a record, removing
one, or cutting the tail off is found by walking the chain (``verify``). The head of the
chain (its last seq and hash) is kept in a one-row table that every append locks, which
serialises writers in both databases (a row lock in PostgreSQL, the write lock in SQLite)
and lets ``verify`` notice a truncated tail. A checkpoint (seq and hash) exported and kept
elsewhere also catches a rewrite of the whole chain.

Passage texts are kept apart from the records, one row per chunk and text hash, because
they must outlive re-ingestion and deletion for a configurable time and yet may be purged
(retention, or a deletion for legal reasons) without breaking the chain: records hold
only the texts' hashes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, Integer, String, Text, func, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import Base, Database
from core.errors import InputError, NotFound, RegistryError

GENESIS = "0" * 64
# The fields a record's hash covers, in the order exports write them.
HASHED = ("seq", "record_id", "kind", "at", "actor", "refused", "unsupported", "question",
          "answer", "body", "prev_hash")
ANSWER = "answer"  # the kind of an answered (or refused) question
_BATCH = 500


def now_iso() -> str:
    """UTC with microseconds; sorts as text in both databases, and hashes the same."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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


class AuditHeadRow(Base):
    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class AuditTextRow(Base):
    __tablename__ = "audit_texts"

    chunk_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    text_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(36), index=True)
    version: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    first_at: Mapped[str] = mapped_column(String(32))
    last_at: Mapped[str] = mapped_column(String(32), index=True)
    purged_at: Mapped[str | None] = mapped_column(String(32), nullable=True)
    purge_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


@dataclass(frozen=True, slots=True)
class Passage:
    """A passage's text as it was when a record referred to it."""

    chunk_id: str
    doc_id: str
    version: str
    source: str
    text: str


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

    def fields(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in HASHED}

    @classmethod
    def of(cls, row: AuditRow) -> Record:
        return cls(row.seq, row.record_id, row.kind, row.at, row.actor, row.refused,
                   row.unsupported, row.question, row.answer, json.loads(row.body),
                   row.prev_hash, row.hash)


@dataclass(frozen=True, slots=True)
class StoredText:
    chunk_id: str
    text_sha256: str
    doc_id: str
    version: str
    source: str
    text: str | None  # None once purged
    purged_at: str | None
    purge_reason: str | None


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    record_id: str | None
    reason: str


@dataclass(slots=True)
class Verification:
    records: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    problems: list[Problem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None


@dataclass(frozen=True, slots=True)
class Filters:
    user: str | None = None
    since: str | None = None  # ISO time, inclusive
    until: str | None = None  # ISO time, exclusive
    text: str | None = None
    kind: str | None = None
    refused: bool | None = None
    unsupported: bool | None = None

    def active(self) -> dict[str, Any]:
        """The filters that are set, for the record of an export."""
        return {k: v for k, v in asdict(self).items() if v is not None}


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writing -----------------------------------------------------------------------------

    def append(self, event: Event) -> Record:
        """Number, chain and store one record, with the texts it refers to, in one transaction."""
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
            s.add(AuditRow(**{**fields, "body": canonical(body).decode("utf-8")}, hash=digest))
            head.seq, head.hash = fields["seq"], digest
            self._keep_texts(s, event.passages, at)
            return Record(**fields, hash=digest)

    def _keep_texts(self, s: Session, passages: Sequence[Passage], at: str) -> None:
        unique = {(p.chunk_id, text_hash(p.text)): p for p in passages}
        if not unique:
            return
        chunk_ids = sorted({c for c, _ in unique})
        have = {(r.chunk_id, r.text_sha256): r for r in s.scalars(
            select(AuditTextRow).where(AuditTextRow.chunk_id.in_(chunk_ids)))}
        for key, p in unique.items():
            row = have.get(key)
            if row is None:
                s.add(AuditTextRow(chunk_id=p.chunk_id, text_sha256=key[1], doc_id=p.doc_id,
                                   version=p.version, source=p.source, text=p.text,
                                   first_at=at, last_at=at))
                continue
            row.last_at = at
            if row.text is None and row.purge_reason == "retention":
                # Cited again after it expired: it is current again. A legal purge stays.
                row.text, row.purged_at, row.purge_reason = p.text, None, None

    def purge_document(self, doc_id: str, reason: str) -> int:
        """Drop the kept texts of one document (a deletion for legal reasons)."""
        with self.db.session() as s:
            result = s.execute(
                update(AuditTextRow).where(AuditTextRow.doc_id == doc_id,
                                           AuditTextRow.text.is_not(None))
                .values(text=None, purged_at=now_iso(), purge_reason=f"legal: {reason}"))
            return int(result.rowcount)  # type: ignore[attr-defined]

    def purge_expired(self, days: int) -> int:
        """Drop kept texts no record has referred to for ``days`` days."""
        cutoff = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with self.db.session() as s:
            result = s.execute(
                update(AuditTextRow).where(AuditTextRow.last_at < cutoff,
                                           AuditTextRow.text.is_not(None))
                .values(text=None, purged_at=now_iso(), purge_reason="retention"))
            return int(result.rowcount)  # type: ignore[attr-defined]

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
        with self.db.session() as s:
            return s.scalar(select(AuditTextRow.source).where(AuditTextRow.doc_id == doc_id)
                            .limit(1))

    def texts(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredText]:
        """Kept texts by (chunk_id, text_sha256)."""
        wanted = set(keys)
        if not wanted:
            return {}
        with self.db.session() as s:
            rows = s.scalars(select(AuditTextRow).where(
                AuditTextRow.chunk_id.in_(sorted({c for c, _ in wanted})))).all()
            return {
                (r.chunk_id, r.text_sha256): StoredText(r.chunk_id, r.text_sha256, r.doc_id,
                                                        r.version, r.source, r.text,
                                                        r.purged_at, r.purge_reason)
                for r in rows if (r.chunk_id, r.text_sha256) in wanted
            }

    def records(self, filters: Filters, limit: int = 50, before: int | None = None) -> list[Record]:
        """Newest first; ``before``: only records with a smaller seq (the next page's cursor)."""
        with self.db.session() as s:
            query = select(AuditRow).where(*_conditions(filters))
            if before is not None:
                query = query.where(AuditRow.seq < before)
            rows = s.scalars(query.order_by(AuditRow.seq.desc()).limit(limit)).all()
            return [Record.of(r) for r in rows]

    def scan(self, filters: Filters | None = None) -> Iterator[Record]:
        """Every matching record, oldest first, read in batches (for exports and verify)."""
        after = 0
        conditions = _conditions(filters or Filters())
        while True:
            with self.db.session() as s:
                rows = s.scalars(select(AuditRow).where(AuditRow.seq > after, *conditions)
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
        """Walk the whole chain; see ``verify_chain``. Also checks the head row."""
        return verify_chain(self.scan(), self.head(), checkpoint)


def verify_chain(records: Iterable[Record], head: tuple[int, str] | None = None,
                 checkpoint: Mapping[str, Any] | None = None) -> Verification:
    """Check numbering, links and content hashes, oldest first.

    A record whose content no longer matches its hash is named; so is a gap in the
    numbering (records removed), a record whose stored hash was replaced (the next record
    still links to the old one), and a tail cut off behind the head's back. The walk goes
    on after a problem, trusting the stored hash, so one altered record is one problem.
    """
    result = Verification()
    expected_seq, prev_hash, prev_id = 1, GENESIS, None
    wanted = _checkpoint(checkpoint)
    for record in records:
        result.records += 1
        if record.seq != expected_seq:
            missing = (f"record {expected_seq} is" if record.seq == expected_seq + 1
                       else f"records {expected_seq} to {record.seq - 1} are")
            result.problems.append(Problem(record.seq, record.record_id,
                                           f"{missing} missing: the chain has a gap before {record.seq}"))
        elif record.prev_hash != prev_hash:
            result.problems.append(Problem(record.seq - 1, prev_id,
                                           f"record {record.seq - 1} does not have the hash record "
                                           f"{record.seq} links to: it was replaced"))
        if record_hash(record.fields()) != record.hash:
            result.problems.append(Problem(record.seq, record.record_id,
                                           f"record {record.seq} was altered: its content does "
                                           "not match its hash"))
        if wanted is not None and record.seq == wanted[0] and record.hash != wanted[1]:
            result.problems.append(Problem(record.seq, record.record_id,
                                           f"record {record.seq} does not match the checkpoint"))
        expected_seq, prev_hash, prev_id = record.seq + 1, record.hash, record.record_id
        result.head_seq, result.head_hash = record.seq, record.hash
    if head is not None and head[0] != result.head_seq:
        result.problems.append(Problem(
            result.head_seq + 1, None,
            f"the chain ends at record {result.head_seq} but its head says {head[0]}: "
            "records at the end were removed" if head[0] > result.head_seq
            else f"the head says {head[0]} but records run to {result.head_seq}"))
    elif head is not None and head[1] != result.head_hash:
        result.problems.append(Problem(result.head_seq, prev_id,
                                       f"record {result.head_seq} does not match the chain's head"))
    if wanted is not None and wanted[0] > result.head_seq:
        result.problems.append(Problem(wanted[0], None,
                                       f"the checkpoint names record {wanted[0]}, past the end "
                                       f"of the chain ({result.head_seq}): records were removed"))
    result.problems.sort(key=lambda p: p.seq)
    return result


def checkpoint_of(seq: int, digest: str) -> dict[str, Any]:
    return {"kind": "enclave-audit-checkpoint", "seq": seq, "hash": digest, "at": now_iso()}


def _checkpoint(checkpoint: Mapping[str, Any] | None) -> tuple[int, str] | None:
    if checkpoint is None:
        return None
    try:
        seq, digest = int(checkpoint["seq"]), str(checkpoint["hash"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError("a checkpoint is a JSON object with seq and hash") from exc
    return seq, digest


def _conditions(f: Filters) -> list[Any]:
    out: list[Any] = []
    if f.user:
        out.append(AuditRow.actor == f.user)
    if f.since:
        out.append(AuditRow.at >= _iso(f.since, "since"))
    if f.until:
        out.append(AuditRow.at < _iso(f.until, "until"))
    if f.kind:
        out.append(AuditRow.kind == f.kind)
    if f.refused is not None:
        out.append(AuditRow.refused == f.refused)  # never matches admin events (NULL)
    if f.unsupported is not None:
        out.append(AuditRow.unsupported > 0 if f.unsupported else AuditRow.unsupported == 0)
    if f.text:
        needle = "%" + f.text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        out.append(or_(func.lower(AuditRow.question).like(needle, escape="\\"),
                       func.lower(AuditRow.answer).like(needle, escape="\\")))
    return out


def _iso(value: str, name: str) -> str:
    """A time filter as the records write times (UTC, microseconds)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"{name}: an ISO 8601 time, e.g. 2026-11-29T08:00:00Z") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- exports ----------------------------------------------------------------------------------

CSV_COLUMNS = ("seq", "record_id", "at", "kind", "actor", "question", "answer", "refused",
               "unsupported", "citations", "model", "hash", "prev_hash")


def jsonl_line(record: Record) -> str:
    """One record as it is hashed, plus its hash: an export ``verify_chain`` can check."""
    return json.dumps({**record.fields(), "hash": record.hash}, ensure_ascii=False) + "\n"


def record_from_json(line: str) -> Record:
    data = json.loads(line)
    try:
        return Record(**{k: data[k] for k in (*HASHED, "hash")})
    except KeyError as exc:
        raise InputError(f"not an audit export line: {exc} is missing") from exc


def csv_header() -> str:
    return _csv_row(CSV_COLUMNS)


def csv_line(record: Record) -> str:
    body = record.body
    return _csv_row([
        record.seq, record.record_id, record.at, record.kind, record.actor,
        record.question or "", record.answer or "",
        "" if record.refused is None else str(record.refused).lower(), record.unsupported,
        len(body.get("citations", ())), body.get("model", ""), record.hash, record.prev_hash,
    ])


def export_lines(records: Iterable[Record], format: str) -> Iterator[str]:
    """An export, line by line: JSONL (verifiable offline) or CSV with its header."""
    if format == "csv":
        yield csv_header()
    for r in records:
        yield csv_line(r) if format == "csv" else jsonl_line(r)


def _csv_row(values: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([_cell(v) for v in values])
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    """A spreadsheet must not run a question as a formula: such text is quoted with '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
