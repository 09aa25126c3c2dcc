"""Ingestion jobs on real Celery workers: failures recorded, crashes survived, cancel, retry."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from core.jobs import CANCELLED, DONE, FAILED
from core.types import Principal
from tests.conftest import ENCLAVE
from tests.workers.conftest import RABBIT, Cluster, write_bad, write_texts


def _assert_store_matches(cluster: Cluster, job_id: str) -> None:
    """Every done item is in Qdrant exactly once, and the registry agrees with Qdrant."""
    c = cluster.container
    assert c.ingestor.check() == []
    items = c.jobs.items(job_id, DONE, limit=10_000)
    counts = c.store.doc_counts()
    for item in items:
        info = c.registry.get(item.doc_id or "")
        assert info is not None and info.active_version, item.source
        assert counts.get(item.doc_id or "") == item.chunks == info.chunk_count > 0, item.source
    assert c.store.count() == sum(counts.values()) == c.registry.totals()["chunks"]


def test_fifty_files_five_bad_shared_by_two_workers(make_cluster, tmp_path: Path) -> None:
    cluster: Cluster = make_cluster()
    share = tmp_path / "share"
    good = write_texts(share, 45)
    bad = write_bad(share / "bad")
    cluster.start_worker()
    cluster.start_worker()

    job = cluster.container.job_runner().submit([share], ["hr"], owner="alice")
    job = cluster.wait(job.job_id)

    assert job.status == DONE
    assert (job.counts["done"], job.counts["failed"], job.total) == (45, 5, 50)
    failed = cluster.container.jobs.items(job.job_id, FAILED)
    assert {Path(i.source) for i in failed} == set(bad)
    reasons = {Path(i.source).name: i.reason or "" for i in failed}
    assert reasons["broken.pdf"].startswith("corrupt")
    assert reasons["empty.txt"].startswith("empty")
    assert all(r for r in reasons.values()), reasons
    done = cluster.container.jobs.items(job.job_id, DONE, limit=100)
    assert {Path(i.source) for i in done} == set(good)
    # Both workers took part in the one job.
    assert len({i.worker for i in done}) == 2, {i.worker for i in done}
    _assert_store_matches(cluster, job.job_id)
    hits = cluster.container.searcher.search("kestrel committee budget", Principal("bob", ("hr",)))
    assert hits and Path(hits[0].chunk.meta["source"]).parent == share
    assert not cluster.container.searcher.search("kestrel committee", Principal("eve", ()))


def test_sigkill_mid_job_then_another_worker_completes_it(make_cluster, tmp_path: Path) -> None:
    cluster: Cluster = make_cluster()
    share = tmp_path / "share"
    write_texts(share, 16, paragraphs=80)
    first = cluster.start_worker()
    job = cluster.container.job_runner().submit([share])

    cluster.wait(job.job_id, until=lambda j: j.counts["done"] >= 2 and j.counts["running"] == 1)
    cluster.kill(first)  # SIGKILL to the worker and its pool process, mid-document
    time.sleep(1)
    stranded = cluster.container.jobs.get(job.job_id)
    assert stranded.status != DONE and stranded.counts["running"] == 1

    cluster.start_worker()
    job = cluster.wait(job.job_id)

    assert job.status == DONE and job.counts["done"] == 16 and job.total == 16
    items = cluster.container.jobs.items(job.job_id, limit=100)
    assert max(i.attempts for i in items) == 2  # the document the killed worker had
    _assert_store_matches(cluster, job.job_id)


def test_cancel_stops_the_rest_and_retry_reruns_only_failed(make_cluster, tmp_path: Path) -> None:
    cluster: Cluster = make_cluster(ENCLAVE_JOBS__WINDOW="1")
    cluster.start_worker()
    runner = cluster.container.job_runner()

    long_job = runner.submit([p for p in write_texts(tmp_path / "long", 12, paragraphs=40)])
    cluster.wait(long_job.job_id, until=lambda j: j.counts["done"] >= 2)
    runner.cancel(long_job.job_id)
    cancelled = cluster.wait(long_job.job_id, until=lambda j: j.counts["running"] == 0
                             and j.counts["queued"] == 0)
    assert cancelled.status == CANCELLED
    assert cancelled.counts["cancelled"] >= 8
    assert cancelled.counts["done"] + cancelled.counts["cancelled"] == 12
    time.sleep(3)
    assert cluster.container.jobs.get(long_job.job_id).counts == cancelled.counts  # nothing ran

    folder = tmp_path / "mixed"
    write_texts(folder, 4, prefix="good")
    empties = [folder / f"late-{n}.txt" for n in range(3)]
    for path in empties:
        path.write_text("")
    job = cluster.wait(runner.submit([folder]).job_id)
    assert (job.counts["done"], job.counts["failed"]) == (4, 3)
    before = {i.source: i for i in cluster.container.jobs.items(job.job_id, DONE)}

    for n, path in enumerate(empties):
        path.write_text(f"Late memo {n}: the harbor office filed its report on time.")
    runner.retry(job.job_id)
    job = cluster.wait(job.job_id)

    assert (job.counts["done"], job.counts["failed"]) == (7, 0)
    after = {i.source: i for i in cluster.container.jobs.items(job.job_id, DONE)}
    for source, item in before.items():
        assert after[source].finished_at == item.finished_at  # not run again
    assert {Path(s) for s in set(after) - set(before)} == set(empties)


def test_a_small_job_is_not_starved_by_a_large_one(make_cluster, tmp_path: Path) -> None:
    cluster: Cluster = make_cluster(ENCLAVE_JOBS__WINDOW="2")
    cluster.start_worker()
    runner = cluster.container.job_runner()
    write_texts(tmp_path / "large", 20, paragraphs=30)
    large = runner.submit([tmp_path / "large"], owner="alice")
    small = runner.submit(write_texts(tmp_path / "small", 1, prefix="urgent"), owner="bob")

    small_done = cluster.wait(small.job_id)
    large_now = cluster.container.jobs.get(large.job_id)
    assert small_done.counts["done"] == 1
    # It waited for at most the large job's window, not for the whole large job.
    assert large_now.counts["done"] <= 6 and large_now.status != DONE
    assert cluster.wait(large.job_id).counts["done"] == 20


def test_rabbitmq_broker_and_the_cli(make_cluster, tmp_path: Path) -> None:
    cluster: Cluster = make_cluster(broker_url=RABBIT)
    cluster.start_worker()
    folder = tmp_path / "docs"
    write_texts(folder, 3)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 broken")

    run = subprocess.run(
        [str(ENCLAVE), "jobs", "submit", str(folder), "--group", "ops", "--wait", "--json"],
        env=cluster.env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 3, run.stderr  # finished, some files failed
    job = json.loads(run.stdout)
    assert job["status"] == "done" and job["counts"]["done"] == 3 and job["counts"]["failed"] == 1

    status = subprocess.run([str(ENCLAVE), "jobs", "status", job["job_id"]], env=cluster.env,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert "FAILED" in status.stdout and "broken.pdf: corrupt" in status.stdout
    listed = subprocess.run([str(ENCLAVE), "jobs", "list", "--json"], env=cluster.env,
                            capture_output=True, text=True, timeout=60)
    assert job["job_id"] in [j["job_id"] for j in json.loads(listed.stdout)["jobs"]]


def test_store_down_retries_with_backoff_then_dead_letters(make_cluster, tmp_path: Path) -> None:
    cluster: Cluster = make_cluster(ENCLAVE_JOBS__MAX_RETRIES="2",
                                    ENCLAVE_JOBS__RETRY_BACKOFF_S="0.2")
    # Only the worker sees a Qdrant server that is down (port 9: nothing listens).
    cluster.start_worker(ENCLAVE_QDRANT__URL="http://127.0.0.1:9", ENCLAVE_QDRANT__TIMEOUT_S="2")
    job = cluster.container.job_runner().submit(write_texts(tmp_path / "docs", 1))
    job = cluster.wait(job.job_id)

    assert job.counts["failed"] == 1
    item = cluster.container.jobs.items(job.job_id)[0]
    assert item.reason and item.reason.startswith("gave up after 2 retries")
    dead = cluster.container.jobs.dead_letters(job.job_id)
    assert [d.item_id for d in dead] == [item.item_id]
    log = cluster.tail_logs()
    assert log.count("Retry in") == 2, log


def test_a_document_over_the_soft_time_limit_fails_alone(make_cluster, tmp_path: Path) -> None:
    cluster: Cluster = make_cluster(ENCLAVE_JOBS__SOFT_TIME_LIMIT_S="1",
                                    ENCLAVE_JOBS__TIME_LIMIT_S="60")
    cluster.start_worker()
    huge = write_texts(tmp_path / "docs", 1, paragraphs=3000, prefix="huge")
    job = cluster.wait(cluster.container.job_runner().submit(huge).job_id)

    item = cluster.container.jobs.items(job.job_id)[0]
    assert item.status == FAILED and item.reason == "took longer than the time limit of 1 s"
    # The limit may strike before the worker made the collection (a cold worker loading its
    # model): building the ingestor here makes it if need be, then nothing may be in it.
    assert cluster.container.ingestor.check() == []
    assert cluster.container.store.count() == 0  # nothing half-written


def test_workers_apply_the_audit_retention(make_cluster) -> None:
    from sqlalchemy import text

    from core.audit import Event, Filters, Passage

    cluster: Cluster = make_cluster()
    audit = cluster.container.audit
    audit.append(Event("answer", "ann", {}, question="q", answer="a", refused=False,
                       passages=[Passage("c1", "d1", "v1", "/docs/a.md", "old text")]))
    audit.append(Event("answer", "ann", {}, question="q", answer="a", refused=False,
                       passages=[Passage("c2", "d2", "v1", "/docs/b.md", "recent text")]))
    with cluster.container.database.engine.begin() as conn:
        conn.execute(text("UPDATE audit_texts SET last_at = '2001-01-01T00:00:00.000000Z' "
                          "WHERE chunk_id = 'c1'"))
    cluster.start_worker()
    deadline = time.monotonic() + 60
    while not audit.records(Filters(kind="audit.retention")):
        assert time.monotonic() < deadline, cluster.tail_logs()
        time.sleep(0.5)
    kept = {t.chunk_id: t for t in audit.texts([("c1", _sha("old text")),
                                                ("c2", _sha("recent text"))]).values()}
    assert kept["c1"].text is None and kept["c1"].purge_reason == "retention"
    assert kept["c2"].text == "recent text"
    assert audit.verify().intact


def _sha(value: str) -> str:
    import hashlib

    return hashlib.sha256(value.encode()).hexdigest()
