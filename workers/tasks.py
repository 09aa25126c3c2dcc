"""Celery tasks: thin wrappers that call ingest.jobs.JobRunner by job or item id.

Each worker process builds its own container on first use (after the fork), with the
embedded store in shared mode so that several worker processes take turns at it. The
embedding model is loaded once, in the parent before it forks its pool: the processes
share its memory, and no task pays for loading it (:func:`_load_model_before_fork`).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time

from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_before_create_process, worker_ready

from core.container import Container
from core.errors import BackendError, one_line
from core.ports import Embedder
from core.settings import Settings
from ingest.jobs import JobRunner
from workers import health
from workers.app import app

log = logging.getLogger(__name__)
_SETTINGS = Settings()
_JOBS = _SETTINGS.jobs
_local: dict[str, object] = {}


def container() -> Container:
    if _local.get("pid") != os.getpid():
        inherited = _local.get("container")
        kept: Embedder | None = None
        if isinstance(inherited, Container):
            # Built before a fork: its pooled connections belong to the parent; drop them
            # without closing the parent's sockets. Its loaded model is kept.
            inherited.forget_connections()
            if "embedder" in inherited.__dict__:
                kept = inherited.embedder
                log.info("embedding model inherited from the worker's parent process")
        from ingest.parse import quiet_parsers

        quiet_parsers()
        settings = Settings()
        settings.qdrant.hold_open = False
        settings.jobs.mode = "celery"
        _local.clear()
        _local["pid"] = os.getpid()
        _local["container"] = Container(settings, embedder=kept)
    return _local["container"]  # type: ignore[return-value]


def runner() -> JobRunner:
    return container().job_runner(timeouts=(SoftTimeLimitExceeded,))


def _backoff(retries: int) -> float:
    delay = min(_JOBS.retry_backoff_max_s, _JOBS.retry_backoff_s * 2**retries)
    return delay * random.uniform(0.5, 1.0)  # jitter: retries of many items spread out


@app.task(bind=True, name="enclave.plan_job", acks_late=True, reject_on_worker_lost=True,
          max_retries=_JOBS.max_retries)
def plan_job(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    try:
        runner().plan(job_id)
    except BackendError as exc:
        log.warning("planning job %s: %s; retrying", job_id, exc)
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@app.task(bind=True, name="enclave.ingest_item", acks_late=True, reject_on_worker_lost=True,
          max_retries=_JOBS.max_retries, soft_time_limit=_JOBS.soft_time_limit_s,
          time_limit=_JOBS.time_limit_s)
def ingest_item(self, item_id: int) -> None:  # type: ignore[no-untyped-def]
    jobs = runner()
    try:
        jobs.run_item(item_id)
    except BackendError as exc:
        item = jobs.book.item(item_id)
        if self.request.retries >= _JOBS.max_retries:
            jobs.book.dead_letter(
                item_id, f"gave up after {self.request.retries} retries: {one_line(exc)}"
            )
            if item is not None:
                jobs.dispatch(item.job_id)
                jobs.book.finish_if_complete(item.job_id)
            return
        jobs.book.requeue(item_id, f"will retry: {one_line(exc)}")
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@app.task(name="enclave.sync_due_sources", acks_late=True, ignore_result=True)
def sync_due_sources() -> int:
    """Celery beat sends this every minute: start the source syncs that are due. Two beats
    (or beat and cron) racing start each sync once: the source's claim decides."""
    from core.admin_records import record_job

    c = container()
    started = runner().sync_due()
    for job in started:
        record_job(c.audit, "schedule", "source.sync", "beat", job)
    return len(started)


@worker_before_create_process.connect
def _load_model_before_fork(**_: object) -> None:
    """Load the int8 model and its tokenizer in the parent, before the pool forks.

    Sent in the parent before each child is made (``worker_init`` comes before this module
    is even imported); the first one loads, later ones find it loaded.

    ONNX Runtime run with one thread per process (what `enclave worker` sets for more than
    one process) starts no thread pool of its own, so a session made before the fork is
    whole in each child, and its weights are shared copy-on-write. PyTorch's thread pools
    do not survive a fork: the fp32 model is loaded by each process instead."""
    c = container()
    if "embedder" in c.__dict__:
        return
    if c.settings.embedding.mode == "onnx-int8" and c.settings.embedding.threads == 1:
        started = time.perf_counter()
        try:
            c.embedder.embed(["warm up"])
            c.embedder.tokenize("warm up")
            log.info("embedding model loaded before the fork in %.2f s", time.perf_counter() - started)
        except Exception:
            log.warning("loading the embedding model before the fork failed; each "
                        "process loads it", exc_info=True)


@worker_ready.connect
def _start_recovery(**_: object) -> None:
    """Each worker looks for work whose worker was lost, at start and then periodically."""

    def loop() -> None:
        interval = health.recovery_interval_s(_SETTINGS)
        next_expiry = 0.0
        while True:
            try:
                health.beat(_SETTINGS)
                runner().recover()
                if time.monotonic() >= next_expiry:
                    # The audit's retention, once a day per worker: cheap, and idempotent.
                    c = container()
                    c.audit.expire(c.settings.audit.text_retention_days,
                                   f"worker:{socket.gethostname()}", "worker")
                    next_expiry = time.monotonic() + 86_400
            except Exception:
                log.warning("recovery pass failed; trying again in %.0f s", interval,
                            exc_info=True)
            threading.Event().wait(interval)

    threading.Thread(target=loop, name="enclave-recovery", daemon=True).start()
