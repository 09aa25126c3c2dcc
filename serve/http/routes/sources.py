"""Admin routes for sources: add, list, show, sync now, check a mapping, remove."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from core.admin_records import record_job
from core.container import Container
from core.errors import InputError, NotFound
from core.sources import Source, parse_every
from ingest.sources.manage import add_source, check_mapping_report, edit_source, remove_source
from serve.http.deps import AdminDep, ContainerDep, RunnerDep, require_role
from serve.http.schemas import JobOut
from serve.http.source_schemas import (
    SourceCreate,
    SourceList,
    SourceOut,
    SourceRemoved,
    SourceUpdate,
)

router = APIRouter(prefix="/v1/admin/sources", tags=["sources"],
                   dependencies=[Depends(require_role("admin"))])


@router.post("", status_code=201, response_model=SourceOut)
def create_source(body: SourceCreate, container: ContainerDep, runner: RunnerDep,
                  caller: AdminDep) -> SourceOut:
    """Add a source. Folders must lie inside ENCLAVE_JOBS__ALLOWED_ROOTS."""
    source = Source(name=body.name, kind=body.kind, location=body.location,
                    username=body.username, credentials=body.credentials,
                    include=tuple(body.include), exclude=tuple(body.exclude),
                    groups=tuple(body.groups),
                    mapping={k: tuple(v) for k, v in body.mapping.items()},
                    options=dict(body.options), every_s=parse_every(body.every))
    confine = runner.confine if runner.roots.configured else _no_folders
    return SourceOut.of(add_source(container.sources, container.audit, caller.user_id, "api",
                                   source, confine))


@router.get("", response_model=SourceList)
def list_sources(container: ContainerDep) -> SourceList:
    return SourceList(sources=[SourceOut.of(s, _last_job(container, s))
                               for s in container.sources.all()])


@router.get("/{name}", response_model=SourceOut)
def show_source(name: str, container: ContainerDep) -> SourceOut:
    source = container.sources.get(name)
    return SourceOut.of(source, _last_job(container, source))


@router.patch("/{name}", response_model=SourceOut)
def update_source(name: str, body: SourceUpdate, container: ContainerDep,
                  caller: AdminDep) -> SourceOut:
    """Change a source; a new mapping or new groups reach its documents at the next sync."""
    given = body.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {}
    for key, value in given.items():
        match key:
            case "every":
                changes["every_s"] = parse_every(value)
            case "include" | "exclude" | "groups":
                changes[key] = tuple(value or ())
            case "mapping":
                changes["mapping"] = {k: tuple(v) for k, v in (value or {}).items()}
            case _:
                changes[key] = value
    if not changes:
        raise InputError("say what to change")
    source = edit_source(container.sources, container.audit, caller.user_id, "api", name,
                         changes)
    return SourceOut.of(source, _last_job(container, source))


@router.post("/{name}/sync", status_code=202, response_model=JobOut)
async def sync_source(name: str, container: ContainerDep, runner: RunnerDep,
                      caller: AdminDep) -> JobOut:
    """Start a sync now: a job (409 while one of this source runs)."""
    job = await run_in_threadpool(runner.sync_source, name, caller.user_id)
    await run_in_threadpool(record_job, container.audit, caller.user_id, "source.sync", "api",
                            job)
    return JobOut.of(job)


@router.get("/{name}/check")
async def check_source(name: str, container: ContainerDep) -> dict[str, Any]:
    """List the source without ingesting: the groups its documents would get, the
    principals no mapping covers, and how many documents each user could read."""
    source = container.sources.get(name)
    return await run_in_threadpool(check_mapping_report, source, container.settings,
                                   container.users.users())


@router.delete("/{name}", response_model=SourceRemoved)
def delete_source(
    name: str, container: ContainerDep, caller: AdminDep,
    keep_documents: Annotated[bool, Query(
        description="Keep the documents it brought in (default: delete them).")] = False,
) -> SourceRemoved:
    deleted = remove_source(container.sources, container.audit, caller.user_id, "api", name,
                            container.ingestor.delete_id,
                            lambda job_id: not container.jobs.is_finished(job_id),
                            keep_documents)
    return SourceRemoved(name=name, documents_deleted=deleted)


def _last_job(container: Container, source: Source) -> JobOut | None:
    if not source.job_id:
        return None
    try:
        return JobOut.of(container.jobs.get(source.job_id))
    except NotFound:
        return None


def _no_folders(path: Any) -> Any:
    from core.errors import AccessDenied

    raise AccessDenied("this server reads no folders: set ENCLAVE_JOBS__ALLOWED_ROOTS")
