"""The admin console's documents: the registry's documents filtered, paged and shown with
what an admin needs to judge one (versions, the job that last wrote it, its chunks in the
store)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath

from core.container import Container
from core.documents_admin import last_item, versions
from core.errors import InputError, NotFound
from core.registry import DocumentInfo
from serve.http.console_schemas import (
    DOCUMENT_STATUSES,
    DocumentDetailOut,
    DocumentPage,
    DocumentRowOut,
    LastJobOut,
    VersionOut,
)


@dataclass(frozen=True, slots=True)
class DocumentFilters:
    text: str | None = None  # in the source, display name or title
    group: str | None = None
    status: str | None = None  # one of DOCUMENT_STATUSES
    type: str | None = None  # an extension: pdf, docx
    since: datetime | None = None  # last changed at or after
    until: datetime | None = None  # last changed before

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in DOCUMENT_STATUSES:
            raise InputError(f"unknown status {self.status!r}: use {', '.join(DOCUMENT_STATUSES)}")


def page(c: Container, filters: DocumentFilters, limit: int, offset: int) -> DocumentPage:
    """Newest change first, filtered and paged by the database; only "low-confidence OCR",
    which weighs each OCR'd page against a setting, is judged here, among the documents
    that OCR read at all."""
    minimum = c.settings.ocr.min_confidence
    suffix = filters.type.lower().lstrip(".") if filters.type else None

    def find(status: str | None, page_limit: int | None,
             page_offset: int) -> tuple[list[DocumentInfo], int]:
        return c.registry.find(text=filters.text, group=filters.group, status=status,
                               suffix=suffix, since=filters.since, until=filters.until,
                               limit=page_limit, offset=page_offset)

    if filters.status == "low_confidence":
        found = [d for d in find("ocr", None, 0)[0] if d.low_confidence(minimum)]
        shown, total = found[offset:offset + limit], len(found)
    else:
        shown, total = find(filters.status, limit, offset)
    with c.store.session():
        stored = c.store.doc_counts()
    return DocumentPage(documents=[_row(d, minimum, stored.get(d.doc_id, 0)) for d in shown],
                        total=total, limit=limit, offset=offset)


def detail(c: Container, doc_id: str) -> DocumentDetailOut:
    info = c.registry.get(doc_id)
    if info is None:
        raise NotFound(f"no document {doc_id}")
    with c.store.session():
        stored = c.store.count(doc_id)
    item = last_item(c.database, doc_id)
    return DocumentDetailOut(
        **_row(info, c.settings.ocr.min_confidence, stored).model_dump(),
        versions=[VersionOut(version=v.version, status=v.status, chunks=v.chunk_count,
                             pages=v.page_count, error=v.error, embedder=v.embedder,
                             created_at=v.created_at, activated_at=v.activated_at)
                  for v in versions(c.database, doc_id)],
        last_job=LastJobOut(job_id=item.job_id, item_id=item.item_id, status=item.status,
                            reason=item.reason, finished_at=item.finished_at) if item else None,
        ocr_pages=[p.as_json() for p in info.ocr_pages],
    )


def _row(d: DocumentInfo, min_confidence: float, stored: int) -> DocumentRowOut:
    return DocumentRowOut(
        doc_id=d.doc_id, source=d.source, display_name=d.display_name, title=d.title,
        type=_type(d), groups=list(d.groups), active=d.active_version is not None,
        failed=d.last_status == "failed",
        low_confidence_pages=len(d.low_confidence(min_confidence)) if d.active_version else 0,
        chunks=d.chunk_count, stored_chunks=stored, pages=d.page_count, last_error=d.last_error,
        embedder=d.embedder, updated_at=d.updated_at)


def _type(d: DocumentInfo) -> str:
    # An archive member's source is "<archive>!/<member>": the member's extension.
    return PurePath(d.source.rsplit("!/", 1)[-1]).suffix.lower().lstrip(".")
