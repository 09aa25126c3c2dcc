"""Auditors' routes: records, their cited texts at the cited versions, exports, verification.

The auditor role reads the trail; it grants no access to documents through chat or search,
and no other role reads the trail. Exports and checkpoints are themselves recorded.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from core.admin_records import record_admin
from core.audit import ANSWER, Filters, now_iso
from core.audit_export import export_lines
from core.feedback import latest_feedback
from serve.http.audit_schemas import AuditDetail, AuditList, AuditSummary, CheckpointOut, VerifyOut
from serve.http.deps import AuditorDep, ContainerDep, require_role

router = APIRouter(prefix="/v1/audit", tags=["audit"],
                   dependencies=[Depends(require_role("auditor"))])


def get_filters(
    user: Annotated[str | None, Query(description="The asker's (or actor's) user id.")] = None,
    since: Annotated[str | None, Query(description="ISO 8601 time, inclusive.")] = None,
    until: Annotated[str | None, Query(description="ISO 8601 time, exclusive.")] = None,
    text: Annotated[str | None, Query(max_length=500,
                                      description="In the question or the answer.")] = None,
    kind: Annotated[str | None, Query(max_length=60,
                                      description="answer, answer.failed, job.submitted, ...")] = None,
    refused: Annotated[bool | None, Query(description="Only refusals (true) or answers.")] = None,
    unsupported: Annotated[bool | None, Query(
        description="Only records with (true) or without unsupported sentences.")] = None,
    feedback: Annotated[Literal["up", "down", "any", "none"] | None, Query(
        description="Only answers whose latest rating is up or down, or that have any or no "
                    "feedback.")] = None,
) -> Filters:
    return Filters(user=user, since=since, until=until, text=text, kind=kind, refused=refused,
                   unsupported=unsupported, feedback=feedback)


FiltersDep = Annotated[Filters, Depends(get_filters)]


@router.get("/records", response_model=AuditList)
def records(container: ContainerDep, filters: FiltersDep,
            limit: Annotated[int, Query(ge=1, le=500)] = 50,
            before: Annotated[int | None, Query(ge=1, description="Cursor: next_before.")] = None,
            ) -> AuditList:
    """Records, newest first, filtered; page with ``before``."""
    found = container.audit.records(filters, limit + 1, before)
    page = found[:limit]
    # One query for the page's ratings, not one per record.
    answers = [r.record_id for r in page if r.kind == ANSWER]
    ratings = {k: f.rating for k, f in latest_feedback(container.database, answers).items()}
    return AuditList(records=[AuditSummary.of(r, ratings.get(r.record_id)) for r in page],
                     next_before=page[-1].seq if len(found) > limit else None)


@router.get("/records/{record_id}", response_model=AuditDetail)
def record(record_id: str, container: ContainerDep) -> AuditDetail:
    """One record in full, with the retrieved and cited passages' texts at their versions."""
    return AuditDetail.load(container.audit, record_id)


@router.get("/export")
def export(container: ContainerDep, filters: FiltersDep, auditor: AuditorDep,
           format: Annotated[Literal["jsonl", "csv"], Query()] = "jsonl") -> StreamingResponse:
    """Every matching record, oldest first, streamed: JSONL (verifiable) or CSV."""
    record_admin(container.audit, auditor.user_id, "audit.exported", "api",
                             format=format, filters=filters.active())
    media = "application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8"
    name = f"enclave-audit-{now_iso()[:10]}.{format}"
    return StreamingResponse(export_lines(container.audit.scan(filters), format), media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/verify", response_model=VerifyOut)
async def verify(container: ContainerDep) -> VerifyOut:
    """Walk the whole chain: numbering, links, content hashes, the head, every seal, every
    line of the checkpoint file and every kept text."""
    return VerifyOut.of(await run_in_threadpool(container.audit.verify))


@router.get("/checkpoint", response_model=CheckpointOut)
def checkpoint(container: ContainerDep, auditor: AuditorDep) -> CheckpointOut:
    """A checkpoint now, signed, naming its own record; also appended to the checkpoint file.
    Keep it elsewhere too, to check the chain against later."""
    return CheckpointOut(**container.audit.checkpoint(auditor.user_id, "api"))
