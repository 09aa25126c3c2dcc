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

from celery import Celery

from core.settings import Settings


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
    )
    return app


app = create_celery(Settings())
