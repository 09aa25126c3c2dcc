"""The document registry: one row per document, one per version, in SQLite or PostgreSQL.

A version moves ``pending -> active -> superseded -> purged`` (or ``pending -> failed``).
The registry and the vector store agree because of the order of writes: a version is
recorded ``pending`` before its chunks are written, becomes ``active`` (and its
predecessor ``superseded``) in one transaction once they are all in, and is ``purged``
after the predecessor's chunks are gone. A run killed anywhere leaves ``pending`` or
``superseded`` rows, which the next run's repair cleans out of the store. Readers only
see chunks of active versions (search checks), so they never see both versions or neither.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath

from sqlalchemy import (
    ColumnElement,
    DateTime,
    ForeignKey,
    Integer,
    Select,
    String,
    Text,
    UniqueConstraint,
    and_,
    func,
    or_,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import Base, Database
from core.errors import RegistryError
from core.types import PageOcr

PENDING, ACTIVE, SUPERSEDED, PURGED, FAILED = "pending", "active", "superseded", "purged", "failed"


def _now() -> datetime:
    return datetime.now(UTC)


class DocumentRow(Base):
    __tablename__ = "documents"

    doc_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source: Mapped[str] = mapped_column(Text, unique=True)
    # The path relative to the folder it was ingested from (migration 0007); None: older rows.
    display_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    title: Mapped[str] = mapped_column(Text, default="")
    groups_json: Mapped[str] = mapped_column(Text, default="[]")
    active_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The last attempt's outcome: ok or failed (with the reason). A failed new version
    # leaves the previous active one searchable.
    last_status: Mapped[str] = mapped_column(String(16), default="ok")
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(json.loads(self.groups_json))


class VersionRow(Base):
    __tablename__ = "document_versions"
    __table_args__ = (UniqueConstraint("doc_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    doc_id: Mapped[str] = mapped_column(ForeignKey("documents.doc_id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    page_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The pages OCR read, each with its mean confidence: a JSON list (migration 0008);
    # None when no page was OCR'd.
    ocr_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The embedder's fingerprint (core.ports.Embedder.fingerprint, migration 0011); None:
    # written before it was recorded.
    embedder: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    doc_id: str
    source: str
    title: str
    groups: tuple[str, ...]
    active_version: str | None
    chunk_count: int
    page_count: int | None
    last_status: str
    last_error: str | None
    updated_at: datetime
    # What employees are shown instead of ``source`` (the server's path).
    display_name: str
    # The active version's pages that OCR read (scans, images), with their confidence.
    ocr_pages: tuple[PageOcr, ...] = ()
    # Which embedder wrote the active version's vectors (None: not recorded).
    embedder: str | None = None

    def low_confidence(self, min_confidence: float) -> tuple[PageOcr, ...]:
        """The OCR'd pages read with less than ``min_confidence``, or not read at all."""
        return tuple(p for p in self.ocr_pages if p.low(min_confidence))


@dataclass(frozen=True, slots=True)
class Stale:
    """A version whose chunks must leave the store (left by a run that stopped midway)."""

    doc_id: str
    version: str
    status: str


class Registry:
    def __init__(self, db: Database | str) -> None:
        self.db = db if isinstance(db, Database) else Database(db)
        self._owns_db = not isinstance(db, Database)
        self._session = self.db.session

    @property
    def engine(self) -> Engine:
        return self.db.engine

    def close(self) -> None:
        if self._owns_db:
            self.db.close()

    # -- reads -----------------------------------------------------------------------------

    def get(self, doc_id: str) -> DocumentInfo | None:
        with self._session() as s:
            row = s.get(DocumentRow, doc_id)
            return self._info(s, row) if row else None

    def find_by_source(self, source: str) -> DocumentInfo | None:
        with self._session() as s:
            row = s.scalar(select(DocumentRow).where(DocumentRow.source == source))
            return self._info(s, row) if row else None

    def documents(self) -> list[DocumentInfo]:
        return self._infos()

    def documents_under(self, prefix: str) -> list[DocumentInfo]:
        """Documents whose source starts with ``prefix`` (an archive's members: ``<archive>!/``)."""
        return self._infos(func.substr(DocumentRow.source, 1, len(prefix)) == prefix)

    def find(self, *, text: str | None = None, group: str | None = None,
             status: str | None = None, suffix: str | None = None,
             since: datetime | None = None, until: datetime | None = None,
             limit: int | None = None, offset: int = 0) -> tuple[list[DocumentInfo], int]:
        """The documents that match every filter given, last changed first, paged; and how
        many match in all. ``text``: in the source, display name or title, any case;
        ``suffix``: the file's extension (``pdf``; an archive member's own); ``status``:
        ``active``, ``failed``, or ``ocr`` (an active version some page of which OCR read);
        ``since``/``until``: last changed at or after / before."""
        where: list[ColumnElement[bool]] = []
        if text:
            needle = text.lower()
            where.append(or_(*(func.lower(column).contains(needle, autoescape=True) for column in
                               (DocumentRow.source, DocumentRow.display_name, DocumentRow.title))))
        if group:
            # groups_json is a sorted JSON list: the group's JSON string, quotes included.
            where.append(DocumentRow.groups_json.contains(json.dumps(group), autoescape=True))
        if suffix is not None:
            # An extension holds no dot and no slash; PurePath.suffix would never match one.
            if not suffix or "." in suffix or "/" in suffix:
                return [], 0
            where.append(func.lower(DocumentRow.source).endswith(f".{suffix.lower()}",
                                                                 autoescape=True))
        match status:
            case "active":
                where.append(DocumentRow.active_version.is_not(None))
            case "failed":
                where.append(DocumentRow.last_status == "failed")
            case "ocr":
                where.append(VersionRow.ocr_json.is_not(None))
        if since is not None:
            where.append(DocumentRow.updated_at >= self._moment(since))
        if until is not None:
            where.append(DocumentRow.updated_at < self._moment(until))
        with self._session() as s:
            total = s.scalar(select(func.count()).select_from(self._joined().where(*where)
                                                              .subquery())) or 0
            query = self._joined().where(*where).order_by(
                DocumentRow.updated_at.desc(), DocumentRow.doc_id.desc()).offset(offset)
            if limit is not None:
                query = query.limit(limit)
            return [_info(row, version) for row, version in s.execute(query).all()], total

    def _moment(self, moment: datetime) -> datetime:
        # Stored in UTC; SQLite keeps the times without their zone, so compare without one.
        utc = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
        return utc.replace(tzinfo=None) if self.engine.dialect.name == "sqlite" else utc

    @staticmethod
    def _joined() -> Select[DocumentRow, VersionRow]:
        return select(DocumentRow, VersionRow).outerjoin(
            VersionRow, and_(VersionRow.doc_id == DocumentRow.doc_id,
                             VersionRow.version == DocumentRow.active_version))

    def _infos(self, *where: ColumnElement[bool]) -> list[DocumentInfo]:
        # One query, each document beside its active version: a registry of 100,000
        # documents is read in one round trip, not one per document.
        query = self._joined().where(*where).order_by(DocumentRow.source)
        with self._session() as s:
            return [_info(row, version) for row, version in s.execute(query).all()]

    def active_versions(self, doc_ids: Sequence[str]) -> dict[str, str]:
        if not doc_ids:
            return {}
        with self._session() as s:
            rows = s.execute(
                select(DocumentRow.doc_id, DocumentRow.active_version).where(
                    DocumentRow.doc_id.in_(set(doc_ids)), DocumentRow.active_version.is_not(None)
                )
            ).all()
            return {doc_id: version for doc_id, version in rows if version is not None}

    def active_chunk_counts(self) -> dict[str, int]:
        with self._session() as s:
            rows = s.execute(
                select(VersionRow.doc_id, VersionRow.chunk_count).where(VersionRow.status == ACTIVE)
            ).all()
            return {doc_id: count for doc_id, count in rows}

    def ocr_pages(self, doc_ids: Sequence[str]) -> dict[str, tuple[PageOcr, ...]]:
        """The OCR'd pages of these documents' active versions (only those with any)."""
        if not doc_ids:
            return {}
        with self._session() as s:
            rows = s.execute(
                select(VersionRow.doc_id, VersionRow.ocr_json).where(
                    VersionRow.doc_id.in_(set(doc_ids)), VersionRow.status == ACTIVE,
                    VersionRow.ocr_json.is_not(None))
            ).all()
            return {doc_id: _pages(text) for doc_id, text in rows}

    def embedders(self) -> dict[str | None, int]:
        """Active versions by the embedder that wrote them: more than one key is a mix."""
        with self._session() as s:
            rows = s.execute(
                select(VersionRow.embedder, func.count()).where(VersionRow.status == ACTIVE)
                .group_by(VersionRow.embedder)
            ).all()
            return {embedder: int(count) for embedder, count in rows}

    def embedded_otherwise(self, embedder: str) -> frozenset[str]:
        """Documents whose active version another embedder (or an unrecorded one) wrote."""
        with self._session() as s:
            rows = s.scalars(
                select(VersionRow.doc_id).where(
                    VersionRow.status == ACTIVE,
                    (VersionRow.embedder != embedder) | VersionRow.embedder.is_(None))
            ).all()
            return frozenset(rows)

    def stale_versions(self, doc_id: str | None = None) -> list[Stale]:
        query = select(VersionRow).where(VersionRow.status.in_((PENDING, SUPERSEDED)))
        if doc_id is not None:
            query = query.where(VersionRow.doc_id == doc_id)
        with self._session() as s:
            rows = s.scalars(query).all()
            return [Stale(r.doc_id, r.version, r.status) for r in rows]

    def totals(self) -> dict[str, int]:
        with self._session() as s:
            documents = s.scalar(
                select(func.count()).select_from(DocumentRow).where(
                    DocumentRow.active_version.is_not(None)
                )
            )
            chunks = s.scalar(
                select(func.coalesce(func.sum(VersionRow.chunk_count), 0)).where(
                    VersionRow.status == ACTIVE
                )
            )
            failed = s.scalar(
                select(func.count()).select_from(DocumentRow).where(
                    DocumentRow.last_status == FAILED
                )
            )
            return {"documents": int(documents or 0), "chunks": int(chunks or 0),
                    "failed": int(failed or 0)}

    # -- the version lifecycle ---------------------------------------------------------------

    def begin_version(
        self, doc_id: str, source: str, version: str, title: str, page_count: int | None,
        *, display_name: str | None = None, ocr_pages: Sequence[PageOcr] = (),
        embedder: str | None = None,
    ) -> None:
        """Record ``version`` as pending before any of its chunks reach the store."""
        ocr_json = json.dumps([p.as_json() for p in ocr_pages]) if ocr_pages else None
        with self._session() as s:
            doc = s.get(DocumentRow, doc_id)
            if doc is None:
                s.add(DocumentRow(doc_id=doc_id, source=source, title=title,
                                  display_name=display_name))
                s.flush()
            row = s.scalar(
                select(VersionRow).where(VersionRow.doc_id == doc_id, VersionRow.version == version)
            )
            if row is None:
                s.add(VersionRow(doc_id=doc_id, version=version, status=PENDING,
                                 page_count=page_count, ocr_json=ocr_json, embedder=embedder))
            else:
                row.status, row.error, row.page_count = PENDING, None, page_count
                row.ocr_json, row.embedder = ocr_json, embedder

    def activate(
        self, doc_id: str, version: str, chunk_count: int, groups: Sequence[str], title: str,
        *, display_name: str | None = None, embedder: str | None = None,
    ) -> str | None:
        """Make ``version`` the one readers see; returns the version it replaced.

        ``display_name`` goes with the version: its chunks carry the same one. ``embedder``:
        who wrote its vectors, when they were rewritten in place (a re-embed of the active
        version, which is never begun again).
        """
        with self._session() as s:
            doc = s.get(DocumentRow, doc_id)
            if doc is None:
                raise RegistryError(f"document {doc_id} vanished from the registry")
            previous = doc.active_version if doc.active_version != version else None
            for row in s.scalars(
                select(VersionRow).where(VersionRow.doc_id == doc_id, VersionRow.status == ACTIVE)
            ):
                if row.version != version:
                    row.status = SUPERSEDED
            current = s.scalar(
                select(VersionRow).where(VersionRow.doc_id == doc_id, VersionRow.version == version)
            )
            if current is None:
                raise RegistryError(f"version {version[:12]} of {doc_id} was never begun")
            current.status, current.chunk_count, current.activated_at = ACTIVE, chunk_count, _now()
            if embedder is not None:
                current.embedder = embedder
            doc.active_version = version
            doc.groups_json = json.dumps(sorted(set(groups)))
            doc.title = title
            if display_name is not None:
                doc.display_name = display_name
            doc.last_status, doc.last_error, doc.updated_at = "ok", None, _now()
            return previous

    def mark_purged(self, doc_id: str, version: str) -> None:
        with self._session() as s:
            row = s.scalar(
                select(VersionRow).where(VersionRow.doc_id == doc_id, VersionRow.version == version)
            )
            if row is not None and row.status in (PENDING, SUPERSEDED):
                # A pending version that never went live failed; keep why.
                if row.status == PENDING:
                    row.status, row.error = FAILED, row.error or "interrupted before completion"
                else:
                    row.status = PURGED

    def record_failure(
        self, doc_id: str, source: str, version: str | None, reason: str, title: str = ""
    ) -> None:
        with self._session() as s:
            doc = s.get(DocumentRow, doc_id)
            if doc is None:
                doc = DocumentRow(doc_id=doc_id, source=source, title=title)
                s.add(doc)
                s.flush()
            doc.last_status, doc.last_error, doc.updated_at = FAILED, reason, _now()
            if version is None:
                return
            row = s.scalar(
                select(VersionRow).where(VersionRow.doc_id == doc_id, VersionRow.version == version)
            )
            if row is None:
                s.add(VersionRow(doc_id=doc_id, version=version, status=FAILED, error=reason))
            elif row.status != ACTIVE:
                row.status, row.error = FAILED, reason

    def set_groups(self, doc_id: str, groups: Sequence[str]) -> None:
        with self._session() as s:
            doc = s.get(DocumentRow, doc_id)
            if doc is not None:
                doc.groups_json = json.dumps(sorted(set(groups)))
                doc.last_status, doc.last_error, doc.updated_at = "ok", None, _now()

    def remove(self, doc_id: str) -> None:
        with self._session() as s:
            for row in s.scalars(select(VersionRow).where(VersionRow.doc_id == doc_id)):
                s.delete(row)
            doc = s.get(DocumentRow, doc_id)
            if doc is not None:
                s.delete(doc)

    def deactivate(self, doc_id: str) -> None:
        """Hide a document from readers before its chunks are deleted."""
        with self._session() as s:
            doc = s.get(DocumentRow, doc_id)
            if doc is not None:
                doc.active_version = None
            for row in s.scalars(
                select(VersionRow).where(VersionRow.doc_id == doc_id, VersionRow.status == ACTIVE)
            ):
                row.status = SUPERSEDED

    def _info(self, s: Session, row: DocumentRow) -> DocumentInfo:
        version = None
        if row.active_version:
            version = s.scalar(
                select(VersionRow).where(
                    VersionRow.doc_id == row.doc_id, VersionRow.version == row.active_version
                )
            )
        return _info(row, version)


def _info(row: DocumentRow, version: VersionRow | None) -> DocumentInfo:
    return DocumentInfo(
        doc_id=row.doc_id,
        source=row.source,
        title=row.title,
        groups=row.groups,
        active_version=row.active_version,
        chunk_count=version.chunk_count if version else 0,
        page_count=version.page_count if version else None,
        last_status=row.last_status,
        last_error=row.last_error,
        updated_at=row.updated_at,
        # Rows from before migration 0007 have none: the file name hides the path too.
        display_name=row.display_name or PurePath(row.source).name,
        ocr_pages=_pages(version.ocr_json) if version and version.ocr_json else (),
        embedder=version.embedder if version else None,
    )


def _pages(ocr_json: str | None) -> tuple[PageOcr, ...]:
    return tuple(PageOcr.of_json(p) for p in json.loads(ocr_json or "[]"))

