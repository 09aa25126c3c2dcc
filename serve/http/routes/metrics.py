"""``GET /metrics``: Prometheus' text format, with the figures read at scrape time."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.container import Container
from core.errors import AccessDenied, Unauthenticated
from serve.http.deps import ContainerDep, get_principal
from serve.http.health import queue_depth

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


class BacklogCollector(Collector):
    """Work waiting and done, from the broker and the job database (any number of workers)."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def collect(self) -> Iterator[Metric]:
        c = self.container
        items = GaugeMetricFamily("enclave_job_items", "Items of ingestion jobs, by status.",
                                  labels=["status"])
        docs = GaugeMetricFamily("enclave_documents", "Documents searchable now.")
        chunks = GaugeMetricFamily("enclave_chunks", "Chunks searchable now.")
        try:
            for status, n in c.jobs.item_totals().items():
                items.add_metric([status], n)
            totals = c.registry.totals()
            docs.add_metric([], totals["documents"])
            chunks.add_metric([], totals["chunks"])
        except Exception:
            log.warning("metrics: the database is unavailable", exc_info=True)
        yield from (items, docs, chunks)
        if c.settings.jobs.mode == "celery":
            depth = GaugeMetricFamily(
                "enclave_queue_depth", "Messages waiting in the broker's queue.", labels=["queue"])
            queue = c.settings.jobs.queue
            try:
                depth.add_metric([queue], queue_depth(c.settings.jobs.broker_url, queue))
            except Exception:
                log.warning("metrics: the broker is unavailable", exc_info=True)
            yield depth


def require_scraper(request: Request, container: ContainerDep) -> None:
    """The metrics token, or an admin: the counts cover documents the caller may not read,
    so the scrape is never open, not even on an internal network."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthenticated("send the metrics token or an admin's API key as "
                              "'Authorization: Bearer <token>'")
    token = container.settings.serve.metrics_token
    if token is not None and hmac.compare_digest(given.strip().encode(), token.encode()):
        return
    if "admin" not in get_principal(request, container).roles:
        raise AccessDenied("metrics need the metrics token or the admin role")


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(require_scraper)])
def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.backlog
    body = generate_latest(REGISTRY) + generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def backlog_registry(container: Container) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BacklogCollector(container))
    return registry
