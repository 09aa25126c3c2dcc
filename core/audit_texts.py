"""The audit's copies of passage texts, kept apart from the records.

One row per chunk and text hash: texts must outlive re-ingestion and deletion for a
configurable time, yet may be purged (retention, or a deletion for legal reasons) without
breaking the chain, which holds only their hashes. A row is found by the hash it was kept
under, so a text edited in place no longer matches it: ``altered`` finds those for verify.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, String, Text, select, tuple_, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import Base, Database

TextKey = tuple[str, str]  # (chunk_id, text_sha256)
_BATCH = 500


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
class StoredText:
    chunk_id: str
    text_sha256: str
    doc_id: str
    version: str
    source: str
    text: str | None  # None once purged
    purged_at: str | None
    purge_reason: str | None

    @property
    def intact(self) -> bool | None:
        """Whether the text still hashes to what it was kept under; None once purged."""
        return None if self.text is None else text_hash(self.text) == self.text_sha256


def keep(s: Session, passages: Sequence[Passage], at: str) -> None:
    """Keep the texts a record refers to, in the record's own transaction."""
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


def purge(db: Database, at: str, reason: str, doc_id: str | None = None,
          unused_since: str | None = None) -> int:
    """Drop kept texts, of one document or not referred to since a time; rows stay."""
    conditions: list[ColumnElement[bool]] = [AuditTextRow.text.is_not(None)]
    if doc_id is not None:
        conditions.append(AuditTextRow.doc_id == doc_id)
    if unused_since is not None:
        conditions.append(AuditTextRow.last_at < unused_since)
    with db.session() as s:
        result = s.execute(update(AuditTextRow).where(*conditions)
                           .values(text=None, purged_at=at, purge_reason=reason))
        return int(result.rowcount)  # type: ignore[attr-defined]


def source_of(db: Database, doc_id: str) -> str | None:
    with db.session() as s:
        return s.scalar(select(AuditTextRow.source).where(AuditTextRow.doc_id == doc_id).limit(1))


def texts(db: Database, keys: Iterable[TextKey]) -> dict[TextKey, StoredText]:
    wanted = set(keys)
    if not wanted:
        return {}
    with db.session() as s:
        rows = s.scalars(select(AuditTextRow).where(
            AuditTextRow.chunk_id.in_(sorted({c for c, _ in wanted})))).all()
        return {
            (r.chunk_id, r.text_sha256): StoredText(r.chunk_id, r.text_sha256, r.doc_id,
                                                    r.version, r.source, r.text, r.purged_at,
                                                    r.purge_reason)
            for r in rows if (r.chunk_id, r.text_sha256) in wanted
        }


def present(db: Database, keys: set[TextKey]) -> set[TextKey]:
    """Which of these texts are kept at all (purged or not)."""
    with db.session() as s:
        rows = s.execute(select(AuditTextRow.chunk_id, AuditTextRow.text_sha256).where(
            AuditTextRow.chunk_id.in_(sorted({c for c, _ in keys})))).all()
    return {(c, d) for c, d in rows} & keys


def altered(db: Database) -> dict[TextKey, str]:
    """Kept texts (not purged) that no longer hash to the hash they are kept under."""
    found: dict[TextKey, str] = {}
    after = ("", "")
    while True:
        with db.session() as s:
            rows = s.execute(
                select(AuditTextRow.chunk_id, AuditTextRow.text_sha256, AuditTextRow.text)
                .where(tuple_(AuditTextRow.chunk_id, AuditTextRow.text_sha256) > after)
                .order_by(AuditTextRow.chunk_id, AuditTextRow.text_sha256).limit(_BATCH)).all()
        for chunk_id, digest, text in rows:
            if text is not None and text_hash(text) != digest:
                found[(chunk_id, digest)] = chunk_id
        if len(rows) < _BATCH:
            return found
        after = (rows[-1][0], rows[-1][1])
