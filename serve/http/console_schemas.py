"""Bodies of the admin console's views: health and documents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class HealthCounts(BaseModel):
    documents: int | None = Field(description="Documents with an active version.")
    chunks: int | None = Field(description="Chunks of the active versions, by the registry.")
    stored_chunks: int | None = Field(description="Chunks the store holds.")
    failed_documents: int | None
    failed_items: int | None = Field(description="Job items that failed, every job.")
    open_items: int | None = Field(description="Job items pending, queued or running.")
    queue_depth: int | None = Field(description="Messages in the broker (Celery jobs only).")


class HealthOut(BaseModel):
    ready: bool = Field(description="Every readiness check is ok.")
    checks: dict[str, str] = Field(description="database, store, model, broker: ok or why not.")
    counts: HealthCounts
    disagreements: list[str] = Field(description="Where the registry and the store differ.")
    disk_bytes: dict[str, int | None] = Field(
        description="store (null for a Qdrant server), database, uploads.")
    models: dict[str, str] = Field(description="answers, llm_mode, embedder.")
    problems: dict[str, str] = Field(description="Figures that could not be read, and why.")
    checked_at: str


DOCUMENT_STATUSES = ("active", "failed", "low_confidence")


class DocumentRowOut(BaseModel):
    doc_id: str
    source: str
    display_name: str
    title: str
    type: str = Field(description="The file's extension, lower case ('' when it has none).")
    groups: list[str]
    active: bool = Field(description="It has a searchable version.")
    failed: bool = Field(description="Its last ingest failed (an older version may still serve).")
    low_confidence_pages: int = Field(description="Pages OCR read with too little confidence.")
    chunks: int
    stored_chunks: int = Field(description="Chunks the store holds for it: a difference from "
                                           "chunks is a disagreement (ingest it again).")
    pages: int | None
    last_error: str | None
    embedder: str | None
    updated_at: datetime


class DocumentPage(BaseModel):
    documents: list[DocumentRowOut]
    total: int = Field(description="Documents matching the filters, all pages.")
    limit: int
    offset: int


class VersionOut(BaseModel):
    version: str
    status: str
    chunks: int
    pages: int | None
    error: str | None
    embedder: str | None
    created_at: datetime
    activated_at: datetime | None


class LastJobOut(BaseModel):
    job_id: str
    item_id: int
    status: str
    reason: str | None
    finished_at: datetime | None


class DocumentDetailOut(DocumentRowOut):
    versions: list[VersionOut]
    last_job: LastJobOut | None
    ocr_pages: list[dict[str, Any]]


class GroupsChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    groups: list[str] = Field(max_length=200, description="The new groups; empty: public.")
