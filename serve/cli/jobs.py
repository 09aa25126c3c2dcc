"""``enclave worker`` and ``enclave jobs ...``: ingestion jobs on Celery workers."""

from __future__ import annotations

import getpass
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from serve.cli.common import (
    EXIT_SOME_FAILED,
    GroupOpt,
    JsonOpt,
    container_scope,
    err,
    out,
    run_cli,
    shared_settings,
)

# The job book and the audit are imported by the commands that use them, so that
# `enclave --help` and the other commands do not load SQLAlchemy for their sake.
if TYPE_CHECKING:
    from core.jobs import Job
    from core.settings import Settings

jobs_app = typer.Typer(help="Ingestion jobs run by `enclave worker` processes.",
                       no_args_is_help=True)
IdArg = Annotated[str, typer.Argument(help="The job's id (from `jobs submit` or `jobs list`).")]


@jobs_app.command("submit")
def submit(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.")],
    group: GroupOpt = None,
    sync: Annotated[bool, typer.Option(
        "--sync", help="Also delete documents whose files are gone from these folders.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until the job ends.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Queue a job; workers ingest it. Prints the job id (exit 3 with --wait if files failed)."""
    from core.admin_records import record_job
    from core.jobs import FAILED

    def work() -> Job:
        with container_scope(shared_settings()) as c:
            job = c.job_runner().submit(
                [p.absolute() for p in paths], group or (), sync=sync, owner=getpass.getuser()
            )
            record_job(c.audit, getpass.getuser(), "job.submitted", "cli", job)
            if wait:
                job = _wait(c.jobs, job.job_id, bar=not as_json and sys.stderr.isatty())
            return job

    job = run_cli(work)
    _print_job(job, as_json, items=None)
    if wait and job.counts.get(FAILED):
        raise typer.Exit(EXIT_SOME_FAILED)


@jobs_app.command("status")
def status(
    job_id: IdArg,
    items: Annotated[str | None, typer.Option(
        "--items", help="List the items with this status (e.g. failed, done); 'all' for every one.")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Progress, ETA, and the files that failed with their reasons."""
    from core.jobs import FAILED

    def work() -> tuple[Job, list[Any], list[Any]]:
        with container_scope() as c:
            job = c.jobs.get(job_id)
            wanted = None if items == "all" else (items or FAILED)
            return job, c.jobs.items(job_id, wanted, limit=100_000), c.jobs.dead_letters(job_id)

    job, listed, dead = run_cli(work)
    _print_job(job, as_json, listed, dead)


@jobs_app.command("list")
def list_jobs(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The newest jobs with their counts."""

    def work() -> list[Job]:
        with container_scope() as c:
            return c.jobs.jobs(limit)

    jobs = run_cli(work)
    if as_json:
        from serve.http.schemas import JobOut

        out.print_json(data={"jobs": [JobOut.of(j).model_dump(mode="json") for j in jobs]})
        return
    for j in jobs:
        out.print(f"{j.job_id}  {j.status:<9} {_counts_line(j)}  {j.owner}  "
                  f"{j.created_at:%Y-%m-%d %H:%M}  {', '.join(j.sources)[:60]}")


@jobs_app.command("cancel")
def cancel(job_id: IdArg, as_json: JsonOpt = False) -> None:
    """Stop a job: items not yet started will not run; running ones finish."""
    from core.admin_records import record_job

    def work() -> Job:
        with container_scope() as c:
            job = c.job_runner().cancel(job_id)
            record_job(c.audit, getpass.getuser(), "job.cancelled", "cli", job)
            return job

    _print_job(run_cli(work), as_json, items=None)


@jobs_app.command("retry")
def retry(job_id: IdArg, as_json: JsonOpt = False) -> None:
    """Run a job's failed items again (only those)."""
    from core.admin_records import record_job

    def work() -> Job:
        with container_scope(shared_settings()) as c:
            job = c.job_runner().retry(job_id)
            record_job(c.audit, getpass.getuser(), "job.retried", "cli", job)
            return job

    _print_job(run_cli(work), as_json, items=None)


def worker(
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", "-c", min=1,
        help="Documents this worker ingests at once (processes). Default: one per CPU core, "
             "so that one is parsed while another is embedded.")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery's log level.")] = "INFO",
) -> None:
    """Start a Celery worker that ingests documents of submitted jobs (Ctrl-C stops it)."""
    concurrency = concurrency or _cores()
    # The cores shared out: each process embeds with its share, and ONNX Runtime with one
    # thread lets the model be loaded once before the fork (workers/tasks.py).
    os.environ.setdefault("ENCLAVE_EMBEDDING__THREADS", str(max(1, _cores() // concurrency)))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The embedded store is shared with other workers and `serve`; set before the tasks load.
    os.environ.setdefault("ENCLAVE_QDRANT__HOLD_OPEN", "false")

    from core.settings import Settings

    def start() -> Settings:
        from core.db import Database

        settings = Settings()
        # Migrated, or refused here when behind (ENCLAVE_DATABASE_MIGRATE=verify), rather
        # than in every task.
        Database(settings.resolved_database_url,
                 migrate=settings.database_migrate == "auto").close()
        if settings.jobs.metrics_port is not None:
            _serve_metrics(settings)
        return settings

    settings = run_cli(start)
    from workers.app import app as celery_app

    celery_app.worker_main([
        "worker", f"--concurrency={concurrency}", f"--loglevel={loglevel}",
        f"--queues={settings.jobs.queue}", "--pool=prefork", "--without-gossip",
        "--without-mingle", f"--hostname=enclave-{os.getpid()}@%h",
    ])


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def beat(
    loglevel: Annotated[str, typer.Option(help="Celery's log level.")] = "INFO",
) -> None:
    """Start Celery beat: it asks a worker every minute to start the source syncs that are
    due (`enclave sources add --every`). Run one per deployment; without a broker, run
    `enclave sources sync --due` from cron instead."""
    from core.settings import Settings

    settings = run_cli(Settings)
    from workers.app import app as celery_app

    run = settings.resolved_data_dir / "run"
    run.mkdir(parents=True, exist_ok=True)
    celery_app.start(["beat", f"--loglevel={loglevel}",
                      f"--schedule={run / 'celerybeat-schedule'}",
                      f"--pidfile={run / 'celerybeat.pid'}"])


def _serve_metrics(settings: Settings) -> None:
    """Prometheus metrics of this worker and its prefork processes, summed, on one port."""
    import sys

    # prometheus_client chooses per-process or shared (files) values when it is imported:
    # the prefork processes write their samples to this folder, the main process sums them.
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess mode was set")
    # Scaled workers share the data volume and often the same pid: the host names them.
    folder = settings.resolved_data_dir / "run" / f"metrics-{socket.gethostname()}-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.db"):
        old.unlink()  # an earlier run's samples would be summed into this one's
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    start_http_server(settings.jobs.metrics_port or 0, registry=registry)


# -- output ------------------------------------------------------------------------------------


def _wait(book: Any, job_id: str, bar: bool, poll_s: float = 0.5) -> Job:
    from core.jobs import CANCELLED, DONE
    from serve.cli.common import progress

    with progress(enabled=bar) as shown:
        task = shown.add_task("planning", total=None) if shown else None
        while True:
            job = book.get(job_id)
            if shown is not None and task is not None:
                shown.update(task, total=job.total if job.planned else None,
                             completed=job.total - job.remaining,
                             description=_counts_line(job)[:40])
            if job.status in (DONE, CANCELLED):
                return job
            time.sleep(poll_s)


def _counts_line(job: Job) -> str:
    shown = [f"{n} {s}" for s, n in job.counts.items() if n]
    return ", ".join(shown) or "no files yet"


def _print_job(
    job: Job, as_json: bool, items: list[Any] | None, dead: Sequence[Any] = ()
) -> None:
    from core.jobs import CANCELLED, DONE

    if as_json:
        from serve.http.schemas import DeadLetterOut, ItemOut, JobOut

        data = JobOut.of(job).model_dump(mode="json")
        if items is not None:
            data["items"] = [ItemOut.of(i).model_dump(mode="json") for i in items]
            data["dead_letters"] = [DeadLetterOut.of(d).model_dump(mode="json") for d in dead]
        out.print_json(data=data)
        return
    eta = job.eta_s()
    out.print(f"job {job.job_id}: {job.status}, {_counts_line(job)}"
              + (f", about {eta:.0f} s left" if eta is not None else ""))
    if job.error:
        out.print(f"note: {job.error}")
    for item in items or ():
        detail = f": {item.reason}" if item.reason else ""
        out.print(f"{item.status.upper():<9} {item.source}{detail}")
    for d in dead:
        out.print(f"DEAD      {d.source}: {d.reason}")
    if items is None and job.status not in (DONE, CANCELLED):
        err.print(f"watch it: enclave jobs status {job.job_id}")
