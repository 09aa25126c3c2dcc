"""The Celery app, configured from settings (``ENCLAVE_JOBS__*``).

Reliability settings, and why:

- ``acks_late`` + ``reject_on_worker_lost``: a message is acknowledged only after its
  document is done, so a worker that dies hands its work back to the broker.
- prefetch 1, and with Redis no prefetch at all (``worker_disable_prefetch``): a worker
  holds only the messages it is running, so a killed worker strands nothing queued.
- Redis' ``visibility_timeout`` beyond the hard time limit: the broker redelivers an
  unacknowledged message only when no worker can still be running it. Workers also
  requeue items whose heartbeat went silent (ingest.jobs.JobRunner.recover), which is
  faster than waiting for the broker.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import before_task_publish, setup_logging, task_postrun, task_prerun

from core.logs import REQUEST_ID
from core.logs import configure as configure_logs
from core.settings import Settings

# The message header that carries the id of the request that caused a task.
REQUEST_ID_HEADER = "enclave_request_id"


def create_celery(settings: Settings) -> Celery:
    jobs = settings.jobs
    redis = jobs.broker_url.startswith(("redis://", "rediss://", "unix://"))
    app = Celery("enclave", broker=jobs.broker_url, backend=jobs.result_backend,
                 include=["workers.tasks"])
    app.conf.update(
        task_default_queue=jobs.queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=jobs.result_backend is None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=redis,
        broker_transport_options=(
            {"visibility_timeout": int(jobs.time_limit_s * 2) + 60} if redis else {}
        ),
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        worker_send_task_events=False,
        enable_utc=True,
        # `celery beat` (the compose file's beat service) starts the source syncs that are
        # due; a source's claim keeps one sync of it at a time whoever sends this.
        beat_schedule={"sync-due-sources": {"task": "enclave.sync_due_sources",
                                            "schedule": jobs.schedule_check_s}},
    )
    return app


@setup_logging.connect
def _logging(loglevel: int | str | None = None, **_: Any) -> None:
    """Connected, so Celery leaves the root logger to us: JSON, request ids, no content.

    ``enclave worker --loglevel`` applies unless ENCLAVE_LOG__LEVEL is set."""
    level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else loglevel
    configure_logs(Settings().log, default_level=level or "INFO")


@before_task_publish.connect
def _carry_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = REQUEST_ID.get()
    if request_id is not None and headers is not None:
        headers.setdefault(REQUEST_ID_HEADER, request_id)


@task_prerun.connect
def _adopt_request_id(task: Any = None, **_: Any) -> None:
    # The item tasks a planning task sends carry the id on (before_task_publish).
    request = getattr(task, "request", None)
    found = getattr(request, REQUEST_ID_HEADER, None)
    if found is None:
        found = (getattr(request, "headers", None) or {}).get(REQUEST_ID_HEADER)
    REQUEST_ID.set(found if isinstance(found, str) else None)


@task_postrun.connect
def _drop_request_id(**_: Any) -> None:
    REQUEST_ID.set(None)


app = create_celery(Settings())
