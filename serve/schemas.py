"""The HTTP API's request and response bodies; internal types are converted here, at the edge."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from core.jobs import DeadLetter, Item, Job
from core.registry import DocumentInfo


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(min_length=1, max_length=1000,
                             description="Absolute files or folders under the allowed roots.")
    groups: list[str] = Field(default_factory=list, max_length=100,
                              description="Access groups of the documents; none: public.")
    sync: bool = Field(default=False, description="Also delete documents whose files are gone.")


class JobOut(BaseModel):
    job_id: str
    owner: str
    status: str
    sources: list[str]
    groups: list[str]
    sync: bool
    planned: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int]
    total: int
    remaining: int
    eta_s: float | None
    error: str | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            job_id=job.job_id, owner=job.owner, status=job.status, sources=list(job.sources),
            groups=list(job.groups), sync=job.sync, planned=job.planned,
            created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
            counts=job.counts, total=job.total, remaining=job.remaining, eta_s=job.eta_s(),
            error=job.error,
        )


class ItemOut(BaseModel):
    item_id: int
    source: str
    doc_id: str | None
    status: str
    reason: str | None
    attempts: int
    chunks: int
    pages: int | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, item: Item) -> ItemOut:
        return cls(
            item_id=item.item_id, source=item.source, doc_id=item.doc_id, status=item.status,
            reason=item.reason, attempts=item.attempts, chunks=item.chunks, pages=item.pages,
            started_at=item.started_at, finished_at=item.finished_at,
        )


class DeadLetterOut(BaseModel):
    item_id: int
    source: str
    reason: str
    attempts: int
    created_at: datetime

    @classmethod
    def of(cls, dead: DeadLetter) -> DeadLetterOut:
        return cls(item_id=dead.item_id, source=dead.source, reason=dead.reason,
                   attempts=dead.attempts, created_at=dead.created_at)


class JobDetail(JobOut):
    items: list[ItemOut]
    dead_letters: list[DeadLetterOut]

    @classmethod
    def with_items(
        cls, job: Job, items: list[Item], dead: list[DeadLetter]
    ) -> JobDetail:
        return cls(**JobOut.of(job).model_dump(), items=[ItemOut.of(i) for i in items],
                   dead_letters=[DeadLetterOut.of(d) for d in dead])


class JobList(BaseModel):
    jobs: list[JobOut]


class DocumentDeleted(BaseModel):
    doc_id: str
    source: str

    @classmethod
    def of(cls, info: DocumentInfo) -> DocumentDeleted:
        return cls(doc_id=info.doc_id, source=info.source)


class ErrorOut(BaseModel):
    error: str
    detail: str
