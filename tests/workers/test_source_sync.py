"""Source syncs on real Celery workers: a worker SIGKILLed mid-sync, another finishing it
without duplicates, and the beat task starting the syncs that are due."""

from __future__ import annotations

import time
from pathlib import Path

from core.jobs import DONE, UNCHANGED
from core.settings import Settings
from core.sources import Source
from tests.workers.conftest import Cluster, write_texts
from tests.workers.test_jobs import _assert_store_matches

EVERYONE = {"other": ("@public",)}


def test_a_sync_killed_midway_resumes_without_duplicates(make_cluster, tmp_path: Path) -> None:
    cluster: Cluster = make_cluster()
    share = tmp_path / "share"
    write_texts(share, 12, paragraphs=80)
    for path in share.iterdir():
        path.chmod(0o644)
    c = cluster.container
    c.sources.add(Source(name="memos", kind="folder", location=str(share), mapping=EVERYONE))
    first = cluster.start_worker()
    job = c.job_runner().sync_source("memos")

    cluster.wait(job.job_id, until=lambda j: j.counts["done"] >= 2 and j.counts["running"] == 1)
    cluster.kill(first)  # mid-document
    time.sleep(1)
    assert c.jobs.get(job.job_id).status != DONE
    cluster.start_worker()
    done = cluster.wait(job.job_id)
    assert done.status == DONE and done.counts["done"] == 12 and done.total == 12
    _assert_store_matches(cluster, job.job_id)

    again = cluster.wait(c.job_runner().sync_source("memos").job_id)
    assert nonzero(again.counts) == {UNCHANGED: 12}
    _assert_store_matches(cluster, job.job_id)


def test_beat_starts_the_syncs_that_are_due(make_cluster, tmp_path: Path) -> None:
    from workers.app import create_celery

    cluster: Cluster = make_cluster()
    share = tmp_path / "share"
    write_texts(share, 2)
    for path in share.iterdir():
        path.chmod(0o644)
    c = cluster.container
    c.sources.add(Source(name="memos", kind="folder", location=str(share), mapping=EVERYONE,
                         every_s=3600))
    cluster.start_worker()
    settings = Settings()
    create_celery(settings).send_task("enclave.sync_due_sources", queue=settings.jobs.queue)
    deadline = time.monotonic() + 60
    while (job_id := c.sources.get("memos").job_id) is None:
        assert time.monotonic() < deadline, cluster.tail_logs()
        time.sleep(0.3)
    assert nonzero(cluster.wait(job_id).counts) == {"done": 2}
    # Not due again until its hour is up: a second beat starts nothing.
    create_celery(settings).send_task("enclave.sync_due_sources", queue=settings.jobs.queue)
    time.sleep(3)
    assert c.sources.get("memos").job_id == job_id


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {status: n for status, n in counts.items() if n}
