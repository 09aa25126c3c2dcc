"""Admin routes: ingestion jobs and document removal. Callers need the admin role."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from core.admin_records import record_job
from core.audit import AuditLog
from core.errors import InputError
from core.jobs import ITEM_DONE, ITEM_STATUSES, UNCHANGED, Job
from core.names import validate_groups
from core.types import Principal
from ingest.deletion import delete_document_recorded
from serve.http.deps import AdminDep, ContainerDep, RunnerDep, require_role
from serve.http.schemas import DocumentDeleted, JobCreate, JobDetail, JobList, JobOut
from serve.http.uploads import save_uploads

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_role("admin"))])

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": JobCreate.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "groups": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["files"],
                }
            },
        },
    }
}


@router.post("/jobs", status_code=202, response_model=JobOut, openapi_extra=_BODY_DOC)
async def submit_job(
    request: Request, runner: RunnerDep, container: ContainerDep, caller: AdminDep
) -> JobOut:
    """Ingest paths under the allowed roots (JSON), or uploaded files (multipart)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        limits = container.settings
        form = await request.form(max_files=10_000, max_fields=1000)
        files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        groups = list(validate_groups([str(g) for g in form.getlist("groups")]))
        folder = await save_uploads(files, limits.resolved_upload_dir,
                                    int(limits.jobs.max_upload_mb * 2**20))
        job = await run_in_threadpool(runner.submit, [folder], groups, owner=caller.user_id)
        await run_in_threadpool(_job_event, container.audit, caller, "job.submitted", job,
                                uploads=[f.filename for f in files])
        return JobOut.of(job)
    if kind != "application/json":
        raise InputError("send application/json ({paths, groups, sync}) or multipart/form-data")
    try:
        body = JobCreate.model_validate_json(await request.body())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InputError(f"{where}: {first.get('msg')}" if where else str(first.get("msg"))) from exc
    job = await run_in_threadpool(
        runner.submit, body.paths, body.groups, sync=body.sync, owner=caller.user_id, require_roots=True
    )
    await run_in_threadpool(_job_event, container.audit, caller, "job.submitted", job)
    return JobOut.of(job)


@router.get("/jobs", response_model=JobList)
def list_jobs(
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    status: Annotated[str | None, Query(pattern="^(planning|running|done|cancelled)$")] = None,
) -> JobList:
    return JobList(jobs=[JobOut.of(j) for j in container.jobs.jobs(limit, offset, status)])


@router.get("/jobs/{job_id}", response_model=JobDetail)
def job_detail(
    job_id: str,
    container: ContainerDep,
    items: Annotated[str | None, Query(description="Only items with this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobDetail:
    """Progress, ETA, and each file's status and error (paged: limit, offset)."""
    if items is not None and items not in ITEM_STATUSES:
        raise InputError(f"items: one of {', '.join(ITEM_STATUSES)}")
    book = container.jobs
    job = book.get(job_id)
    page = book.items(job_id, items, limit, offset)
    # Ingested items whose OCR'd pages were read with too little confidence: the registry
    # keeps every page's confidence; the threshold is today's setting.
    ingested = [i.doc_id for i in page if i.doc_id and i.status in (ITEM_DONE, UNCHANGED)]
    minimum = container.settings.ocr.min_confidence
    low = {doc_id: [p for p in pages if p.low(minimum)]
           for doc_id, pages in container.registry.ocr_pages(ingested).items()}
    return JobDetail.with_items(job, page, book.dead_letters(job_id), low)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: str, runner: RunnerDep, container: ContainerDep, caller: AdminDep) -> JobOut:
    job = runner.cancel(job_id)
    _job_event(container.audit, caller, "job.cancelled", job)
    return JobOut.of(job)


@router.post("/jobs/{job_id}/retry", response_model=JobOut)
def retry_job(job_id: str, runner: RunnerDep, container: ContainerDep, caller: AdminDep) -> JobOut:
    """Run the job's failed items again (only those)."""
    job = runner.retry(job_id)
    _job_event(container.audit, caller, "job.retried", job)
    return JobOut.of(job)


@router.delete("/documents/{doc_id}", response_model=DocumentDeleted)
def delete_document(
    doc_id: str,
    container: ContainerDep,
    caller: AdminDep,
    legal_reason: Annotated[str | None, Query(
        min_length=3, max_length=1000,
        description="A deletion for legal reasons: the audit's kept texts of the document are "
                    "purged too, and the reason is recorded.")] = None,
) -> DocumentDeleted:
    """Remove a document everywhere: its chunks in Qdrant and its registry rows."""
    info = delete_document_recorded(container.ingestor, container.audit,
                                    container.conversations, caller.user_id, "api", doc_id,
                                    legal_reason)
    return DocumentDeleted.of(info)


def _job_event(audit: AuditLog, caller: Principal, kind: str, job: Job, **extra: object) -> None:
    record_job(audit, caller.user_id, kind, "api", job, **extra)
