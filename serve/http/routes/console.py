"""The admin console's views that are not the CLI's routes already: health and documents.
Removing a document is ``DELETE /v1/admin/documents/{doc_id}`` (routes/admin.py)."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from core.admin_records import record_admin
from core.documents_admin import regroup
from serve.http.console_schemas import (
    DocumentDetailOut,
    DocumentPage,
    GroupsChange,
    HealthOut,
)
from serve.http.deps import AdminDep, ContainerDep, require_role
from serve.http.documents_view import DocumentFilters, detail, page
from serve.http.overview import overview

router = APIRouter(prefix="/v1/admin", tags=["console"], dependencies=[Depends(require_role("admin"))])


@router.get("/health", response_model=HealthOut)
def health(container: ContainerDep) -> HealthOut:
    """The readiness checks, the counts, the disk used by the store, the database and the
    uploads, and the models in use. A figure that cannot be read is null, with the reason
    under ``problems``: the view answers 200 when the service is half down."""
    return HealthOut.model_validate(overview(container))


@router.get("/documents", response_model=DocumentPage)
def list_documents(
    container: ContainerDep,
    text: Annotated[str | None, Query(max_length=500, description="In the source, name or title.")] = None,
    group: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[str | None, Query(description="active, failed or low_confidence.")] = None,
    type: Annotated[str | None, Query(max_length=20, description="An extension: pdf, docx.")] = None,
    since: Annotated[datetime | None, Query(description="Changed at or after (ISO time).")] = None,
    until: Annotated[datetime | None, Query(description="Changed before (ISO time).")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DocumentPage:
    """Documents, newest change first, filtered and paged; ``total`` counts every match."""
    filters = DocumentFilters(text, group, status, type, since, until)
    return page(container, filters, limit, offset)


@router.get("/documents/{doc_id}", response_model=DocumentDetailOut)
def document_detail(doc_id: str, container: ContainerDep) -> DocumentDetailOut:
    """One document: its versions, chunks in the registry and the store, pages, groups,
    OCR pages, the job item that last wrote it and its last error."""
    return detail(container, doc_id)


@router.patch("/documents/{doc_id}/groups", response_model=DocumentDetailOut)
def change_groups(doc_id: str, body: GroupsChange, container: ContainerDep,
                  caller: AdminDep) -> DocumentDetailOut:
    """Set who may read the document: every chunk in the store, then the registry, as one
    step per document (concurrent changes: the last one wins, in both). Recorded with the
    groups before and after. The document's next ingest or sync sets the groups its job or
    source gives it again."""
    store = container.store

    def apply(groups: tuple[str, ...]) -> None:
        with store.session():
            store.set_access(doc_id, groups)

    # The record is written once the change is committed (SQLite has one writer at a time,
    # and the change holds it); this lock keeps this server's records in the order of its
    # changes. Servers apart may record two simultaneous changes the other way round; each
    # record still names the groups before and after.
    with _REGROUPING:
        source, before, after = regroup(container.database, doc_id, body.groups, apply)
        record_admin(container.audit, caller.user_id, "document.groups_changed", "api",
                     doc_id=doc_id, source=source, groups_before=list(before),
                     groups=list(after))
    return detail(container, doc_id)


_REGROUPING = threading.Lock()
