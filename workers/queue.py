"""The JobQueue that sends work to Celery workers through the broker."""

from __future__ import annotations

from celery import Celery

from core.errors import BackendError

PLAN_TASK = "enclave.plan_job"
ITEM_TASK = "enclave.ingest_item"


class CeleryQueue:
    def __init__(self, app: Celery) -> None:
        self.app = app

    def send_plan(self, job_id: str) -> None:
        self._send(PLAN_TASK, job_id)

    def send_item(self, item_id: int) -> None:
        self._send(ITEM_TASK, item_id)

    def _send(self, task: str, ref: str | int) -> None:
        try:
            self.app.send_task(
                task, args=[ref], retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.5, "interval_step": 1.0},
            )
        except Exception as exc:  # kombu raises its own OperationalError family
            raise BackendError(
                f"the job broker at {self.app.conf.broker_url} is unreachable: {exc}"
            ) from exc
