"""``enclave sources ...``: folders, SMB shares, IMAP mailboxes and intranet sites, synced
as ingestion jobs, by hand, from cron (``sync --due``) or by Celery beat."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from core.choices import KINDS, Kind
from core.errors import InputError
from serve.cli.common import (
    EXIT_SOME_FAILED,
    GroupOpt,
    JsonOpt,
    container_scope,
    out,
    run_cli,
    shared_settings,
)

# The books are imported by the commands that use them: `enclave --help` needs none.
if TYPE_CHECKING:
    from core.jobs import Job
    from core.sources import Source

sources_app = typer.Typer(help="Sources synced on a schedule: folders, SMB shares, IMAP "
                               "mailboxes, intranet sites.", no_args_is_help=True)
NameArg = Annotated[str, typer.Argument(help="The source's name.")]


@sources_app.command("add")
def add(
    name: NameArg,
    kind: Annotated[str, typer.Option("--kind", help=f"One of {', '.join(KINDS)}.")],
    location: Annotated[str, typer.Option(
        "--location", help="A folder path, smb://host\\[:port]/share\\[/path], "
                           "imap\\[s]://host\\[:port]/FOLDER, or the site's start URL.")],
    user: Annotated[str | None, typer.Option("--user", help="Account to log in as.")] = None,
    credentials: Annotated[str | None, typer.Option(
        "--credentials", help="Where its password comes from: env:VARIABLE or "
                              "file:/path/to/secret. Never the password itself.")] = None,
    include: Annotated[list[str] | None, typer.Option(
        "--include", help="Glob of paths (URL paths, attachment names) to take; repeat.")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", help="Glob of paths to leave out; repeat.")] = None,
    group: GroupOpt = None,
    public: Annotated[bool, typer.Option(
        "--public", help="Mailbox or site readable by every user.")] = False,
    mapping: Annotated[list[str] | None, typer.Option(
        "--map", help="PRINCIPAL=GROUP[,GROUP]: who the share says may read a file -> "
                      "enclave groups (group:finance=finance, other=@public); repeat.")] = None,
    every: Annotated[str | None, typer.Option(
        "--every", help="Sync on a schedule: 15m, 6h, 1d.")] = None,
    option: Annotated[list[str] | None, typer.Option(
        "--option", help="KEY=VALUE kind-specific limit, e.g. max_pages=500; repeat.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a source. Its credentials stay where they are; only where to find them is kept."""
    from core.sources import PUBLIC, Source, parse_every

    if kind not in KINDS:
        raise typer.BadParameter(f"one of {', '.join(KINDS)}", param_hint="--kind")
    groups = [*(group or ()), *((PUBLIC,) if public else ())]

    def work() -> Source:
        from ingest.sources.manage import add_source

        source = Source(
            name=name, kind=_kind(kind), location=location, username=user,
            credentials=credentials, include=tuple(include or ()),
            exclude=tuple(exclude or ()), groups=tuple(groups), mapping=_mapping(mapping or ()),
            options=_options(option or ()), every_s=parse_every(every))
        with container_scope(shared_settings()) as c:
            return add_source(c.sources, c.audit, getpass.getuser(), "cli", source,
                              c.job_runner().confine)

    _print_source(run_cli(work), as_json)


@sources_app.command("edit")
def edit(
    name: NameArg,
    user: Annotated[str | None, typer.Option("--user", help="Account to log in as.")] = None,
    credentials: Annotated[str | None, typer.Option(
        "--credentials", help="env:VARIABLE or file:/path/to/secret.")] = None,
    include: Annotated[list[str] | None, typer.Option(
        "--include", help="Globs to take (replace the current ones); repeat.")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", help="Globs to leave out (replace the current ones); repeat.")] = None,
    group: GroupOpt = None,
    public: Annotated[bool, typer.Option(
        "--public", help="Mailbox or site readable by every user.")] = False,
    mapping: Annotated[list[str] | None, typer.Option(
        "--map", help="PRINCIPAL=GROUP[,GROUP] (replaces the whole mapping); repeat.")] = None,
    every: Annotated[str | None, typer.Option(
        "--every", help="A new schedule (15m, 6h, 1d), or 'off'.")] = None,
    option: Annotated[list[str] | None, typer.Option(
        "--option", help="KEY=VALUE (replaces the options); repeat.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a source. A new mapping, new groups or new globs reach the documents in
    enclave at the next sync (without embedding them again)."""
    from core.sources import PUBLIC, parse_every

    changes: dict[str, Any] = {}
    if user is not None:
        changes["username"] = user
    if credentials is not None:
        changes["credentials"] = credentials
    if include is not None:
        changes["include"] = tuple(include)
    if exclude is not None:
        changes["exclude"] = tuple(exclude)
    if group or public:
        changes["groups"] = (*(group or ()), *((PUBLIC,) if public else ()))
    if mapping is not None:
        changes["mapping"] = _mapping(mapping)
    if every is not None:
        changes["every_s"] = parse_every(every)
    if option is not None:
        changes["options"] = _options(option)
    if not changes:
        raise typer.BadParameter("say what to change, e.g. --map group:hr=hr")

    def work() -> Source:
        from ingest.sources.manage import edit_source

        with container_scope(shared_settings()) as c:
            return edit_source(c.sources, c.audit, getpass.getuser(), "cli", name, changes)

    _print_source(run_cli(work), as_json)


@sources_app.command("list")
def list_sources(as_json: JsonOpt = False) -> None:
    """Every source, its schedule and its last sync."""

    def work() -> list[tuple[Source, Job | None]]:
        with container_scope() as c:
            return [(s, _job(c, s)) for s in c.sources.all()]

    listed = run_cli(work)
    if as_json:
        out.print_json(data=[_source_json(s, j) for s, j in listed])
        return
    if not listed:
        out.print("no sources: add one with `enclave sources add`")
    for source, job in listed:
        last = f"{job.status} ({_counts(job)})" if job else "never synced"
        out.print(f"{source.name:<20} {source.kind:<6} {source.location}  "
                  f"every {_every(source.every_s)}  last sync: {last}")


@sources_app.command("show")
def show(name: NameArg, as_json: JsonOpt = False) -> None:
    """One source: where it is, who may read what it holds, and its last sync."""

    def work() -> tuple[Source, Job | None, int]:
        with container_scope() as c:
            source = c.sources.get(name)
            return source, _job(c, source), len(c.sources.entries(name))

    source, job, entries = run_cli(work)
    if as_json:
        out.print_json(data={**_source_json(source, job), "entries": entries})
        return
    _print_source(source, False)
    out.print(f"entries known: {entries}")
    if job:
        out.print(f"last sync: job {job.job_id}, {job.status}, {_counts(job)}"
                  + (f"; note: {job.error}" if job.error else ""))


@sources_app.command("sync")
def sync(
    name: Annotated[str | None, typer.Argument(help="The source to sync.")] = None,
    due: Annotated[bool, typer.Option(
        "--due", help="Sync every source whose schedule is due (run it from cron).")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until it ends.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Sync a source now (a job; exit 3 with --wait if items failed), or those that are due."""
    from core.admin_records import record_job
    from core.jobs import FAILED

    if (name is None) == (not due):
        raise typer.BadParameter("name one source, or give --due")

    def work() -> list[Job]:
        from serve.cli.jobs import _wait

        actor = getpass.getuser()
        with container_scope(shared_settings()) as c:
            runner = c.job_runner()
            jobs = runner.sync_due(actor) if due else [runner.sync_source(name or "", actor)]
            for job in jobs:
                record_job(c.audit, actor, "source.sync", "cli", job)
            if wait:
                jobs = [_wait(c.jobs, j.job_id, bar=not as_json and sys.stderr.isatty())
                        for j in jobs]
            return jobs

    from serve.cli.jobs import _print_job

    jobs = run_cli(work)
    if as_json and due:
        from serve.http.schemas import JobOut

        out.print_json(data=[JobOut.of(j).model_dump(mode="json") for j in jobs])
    else:
        for job in jobs:
            _print_job(job, as_json, items=None)
        if due and not jobs:
            out.print("no source is due")
    if wait and any(j.counts.get(FAILED) for j in jobs):
        raise typer.Exit(EXIT_SOME_FAILED)


@sources_app.command("remove")
def remove(
    name: NameArg,
    keep: Annotated[bool, typer.Option(
        "--keep-documents", help="Keep the documents it brought in (default: delete them).")]
    = False,
) -> None:
    """Remove a source and, unless --keep-documents, every document it brought in."""

    def work() -> int:
        from ingest.sources.manage import remove_source

        with container_scope(shared_settings()) as c:
            return remove_source(c.sources, c.audit, getpass.getuser(), "cli", name,
                                 c.ingestor.delete_id, lambda j: not c.jobs.is_finished(j),
                                 keep)

    deleted = run_cli(work)
    out.print(f"removed source {name}; {deleted} documents deleted")


@sources_app.command("check")
def check(name: NameArg, as_json: JsonOpt = False) -> None:
    """Before the first sync: list the source and print which enclave groups its documents
    would get, and how many each user could read. Nothing is ingested."""

    def work() -> dict[str, Any]:
        from ingest.sources.manage import check_mapping_report

        with container_scope() as c:
            return check_mapping_report(c.sources.get(name), c.settings, c.users.users())

    report = run_cli(work)
    if as_json:
        out.print_json(data=report)
        return
    out.print(f"{report['source']}: {report['documents']} documents")
    for row in report["by_groups"]:
        label = ("not ingested: no reader mapped" if row["groups"] is None
                 else "public" if row["public"] else ", ".join(row["groups"]))
        out.print(f"  {row['documents']:>6}  {label}")
    for principal, n in report["unmapped_principals"].items():
        out.print(f"  unmapped principal {principal}: {n} documents")
    for user, n in report["users"].items():
        out.print(f"  user {user} would read {n}")


# -- helpers -------------------------------------------------------------------------------------


def _kind(kind: str) -> Kind:
    for known in KINDS:
        if kind == known:
            return known
    raise InputError(f"unknown kind {kind!r}")


def _mapping(pairs: Sequence[str]) -> dict[str, tuple[str, ...]]:
    mapping: dict[str, tuple[str, ...]] = {}
    for pair in pairs:
        principal, sep, groups = pair.rpartition("=")
        if not sep or not principal:
            raise InputError(f"--map {pair!r}: give PRINCIPAL=GROUP[,GROUP]")
        mapping[principal] = tuple(g.strip() for g in groups.split(",") if g.strip())
    return mapping


def _options(pairs: Sequence[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise InputError(f"--option {pair!r}: give KEY=VALUE")
        options[key] = int(value) if value.isdigit() else {"true": True, "false": False}.get(
            value.lower(), value)
    return options


def _job(c: Any, source: Source) -> Job | None:
    from core.errors import NotFound

    if not source.job_id:
        return None
    try:
        job: Job = c.jobs.get(source.job_id)
        return job
    except NotFound:
        return None


def _counts(job: Job) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(job.counts.items())) or "nothing"


def _every(seconds: int | None) -> str:
    if not seconds:
        return "- (by hand)"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _source_json(source: Source, job: Job | None) -> dict[str, Any]:
    return {"name": source.name, "kind": source.kind, "location": source.location,
            "user": source.username, "credentials": source.credentials,
            "include": list(source.include), "exclude": list(source.exclude),
            "groups": list(source.groups),
            "mapping": {k: list(v) for k, v in source.mapping.items()},
            "options": dict(source.options), "every_s": source.every_s,
            "last_sync_at": source.last_sync_at.isoformat() if source.last_sync_at else None,
            "last_job": {"job_id": job.job_id, "status": job.status, "counts": job.counts,
                         "error": job.error} if job else None}


def _print_source(source: Source, as_json: bool) -> None:
    if as_json:
        out.print_json(data=_source_json(source, None))
        return
    out.print(f"source {source.name}: {source.kind} at {source.location}")
    if source.username:
        out.print(f"  logs in as {source.username}, password from {source.credentials}")
    if source.groups:
        out.print(f"  readable by: {', '.join(source.groups)}")
    for principal, groups in source.mapping.items():
        out.print(f"  {principal} -> {', '.join(groups) or 'nothing'}")
    if source.include or source.exclude:
        out.print(f"  include {list(source.include)}, exclude {list(source.exclude)}")
    out.print(f"  schedule: every {_every(source.every_s)}")
