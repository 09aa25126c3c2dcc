"""What a deployment watches on real workers: the request id from the API in the worker's
JSON logs, the worker's Prometheus metrics summed over its processes, its health check,
and the one-shot migration step it waits for."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx

from core.jobs import DONE
from tests.conftest import ENCLAVE, free_port
from tests.serve.conftest import Api
from tests.serve.http.test_observe import _sample
from tests.workers.conftest import Cluster, write_texts


def test_a_job_from_the_api_is_traced_counted_and_health_checked(make_cluster, tmp_path: Path) -> None:
    share = tmp_path / "share"
    write_texts(share, 3)
    (share / "broken.pdf").write_bytes(b"%PDF-1.4 broken")
    port = free_port()
    cluster: Cluster = make_cluster(
        ENCLAVE_JOBS__ALLOWED_ROOTS=json.dumps([str(share)]), ENCLAVE_LOG__FORMAT="json",
        ENCLAVE_JOBS__METRICS_PORT=str(port), ENCLAVE_DATABASE_MIGRATE="verify",
    )
    # verify: a worker refuses a database the migration step has not prepared, and says why.
    refused = subprocess.run([str(ENCLAVE), "worker"], env=cluster.env, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 1 and "enclave db upgrade" in refused.stderr, refused.stderr
    upgraded = subprocess.run([str(ENCLAVE), "db", "upgrade"], env=cluster.env,
                              capture_output=True, text=True, timeout=120)
    assert upgraded.returncode == 0, upgraded.stderr
    status = subprocess.run([str(ENCLAVE), "db", "status", "--json"], env=cluster.env,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and json.loads(status.stdout)["up_to_date"] is True

    worker = cluster.start_worker(concurrency=2)
    api = Api(cluster.container)
    try:
        submitted = api.http.post("/v1/admin/jobs", json={"paths": [str(share)]},
                                  headers={"X-Request-ID": "job-req-5"})
        assert submitted.status_code == 202, submitted.text
        job = cluster.wait(submitted.json()["job_id"])
    finally:
        api.stop()
    assert job.status == DONE and (job.counts["done"], job.counts["failed"]) == (3, 1)

    # The worker's log: JSON lines, each item's outcome under the request's id.
    lines = [json.loads(line) for line in (cluster.logs / "worker-0.log").read_text().splitlines()
             if line.startswith("{")]
    items = [r for r in lines if r["logger"] == "ingest.jobs" and "outcome" in r]
    assert len(items) == 4 and {r["request_id"] for r in items} == {"job-req-5"}, items
    # The model was loaded once, in the parent, and the pool's processes that ran a task
    # embedded with it (two processes, one ONNX Runtime thread each).
    models = [r["message"] for r in lines if r["logger"] == "workers.tasks"]
    assert sum("loaded before the fork" in m for m in models) == 1, models
    assert 1 <= sum("inherited from the worker's parent" in m for m in models) <= 2, models

    # Its metrics: both prefork processes' counts, summed, on one port.
    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    chunks = sum(i.chunks for i in cluster.container.jobs.items(job.job_id, DONE))
    assert _sample(scraped, "enclave_ingest_documents_total", outcome="ingested") == 3
    assert _sample(scraped, "enclave_ingest_documents_total", outcome="failed") == 1
    assert _sample(scraped, "enclave_ingest_chunks_total") == chunks > 0
    assert _sample(scraped, "enclave_ingest_stage_seconds_total", stage="embed") > 0

    healthy = subprocess.run([str(ENCLAVE), "health", "worker"], env=cluster.env,
                             capture_output=True, text=True, timeout=60)
    assert healthy.returncode == 0, healthy.stderr
    cluster.kill(worker)
    time.sleep(1.5)
    stale = subprocess.run([str(ENCLAVE), "health", "worker", "--max-age", "1"], env=cluster.env,
                           capture_output=True, text=True, timeout=60)
    assert stale.returncode == 1 and "last beat" in stale.stderr
