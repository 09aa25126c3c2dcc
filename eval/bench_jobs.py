"""``enclave bench jobs``: ingestion throughput on real worker processes, and job latency.

For each worker count it starts that many ``enclave worker`` processes on a fresh data
folder and a queue of its own, warms them up (each loads the embedding model once), then
times one job over the given files from submit to done: pages per second. With the
workers still warm it then times one small file from submit until search finds it.
The CPU cores are divided between the workers' torch threads. Each run has a registry of
its own (SQLite); the broker is the configured one (Redis by default).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.container import Container
from core.jobs import DONE
from core.settings import Settings
from core.types import Principal

_ENCLAVE = Path(sys.executable).parent / "enclave"


def bench_jobs(paths: Sequence[Path], worker_counts: Sequence[int]) -> dict[str, Any]:
    runs = [_run(paths, n) for n in worker_counts]
    base = runs[0]["pages_per_s"] or 1.0
    for run in runs:
        run["speedup_vs_first"] = round(run["pages_per_s"] / base, 2)
    return {"cores": os.cpu_count(), "runs": runs}


def _run(paths: Sequence[Path], workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="enclave-bench-jobs-") as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items()}
        env.update({
            "ENCLAVE_DATA_DIR": str(root / "data"),
            # A registry of its own per run (SQLite in the data folder), or the second run
            # would find every file unchanged.
            "ENCLAVE_DATABASE_URL": f"sqlite:///{root / 'bench.db'}",
            "ENCLAVE_JOBS__QUEUE": f"enclave-bench-{uuid.uuid4().hex[:8]}",
            "ENCLAVE_QDRANT__HOLD_OPEN": "false",
            "ENCLAVE_QDRANT__LOCK_WAIT_S": "120",
            "ENCLAVE_JOBS__WINDOW": str(max(2, workers * 2)),
            "ENCLAVE_EMBEDDING__THREADS": str(max(1, (os.cpu_count() or 1) // workers)),
        })
        procs = [_start_worker(env, root / f"worker-{n}.log") for n in range(workers)]
        saved = {k: os.environ.get(k) for k in env if k.startswith("ENCLAVE_")}
        os.environ.update({k: v for k, v in env.items() if k.startswith("ENCLAVE_")})
        container = Container(Settings())
        try:
            runner = container.job_runner()
            warm = root / "warm"
            warm.mkdir()
            for n in range(workers):
                (warm / f"warm-{n}.txt").write_text(f"Warm-up note {n} for worker model loading.")
            _wait(container, runner.submit([warm]).job_id)
            # This process searches too: load its model before anything is timed.
            container.searcher.search("warm up", Principal("bench", ()))

            started = time.perf_counter()
            job = _wait(container, runner.submit(list(paths)).job_id)
            seconds = time.perf_counter() - started
            items = container.jobs.items(job.job_id, DONE, limit=1_000_000)
            pages = sum(i.pages or 0 for i in items)

            latency = _submit_to_searchable(container, root / "one")
        finally:
            container.close()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            for proc in procs:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
    return {
        "workers": workers,
        "files_done": len(items),
        "files_failed": job.counts.get("failed", 0),
        "pages": pages,
        "seconds": round(seconds, 1),
        "pages_per_s": round(pages / seconds, 2) if seconds else 0.0,
        "submit_to_searchable_s": round(latency, 2),
    }


def _submit_to_searchable(container: Container, folder: Path) -> float:
    folder.mkdir()
    token = f"zebrafinch{uuid.uuid4().hex[:6]}"
    note = f"The {token} procurement note: orders above limits need two signatures."
    (folder / "note.txt").write_text(note)
    started = time.perf_counter()
    container.job_runner().submit([folder])
    anyone = Principal("bench", ())
    while True:
        hits = container.searcher.search(f"{token} procurement", anyone)
        if any(token in h.chunk.text for h in hits):
            return time.perf_counter() - started
        if time.perf_counter() - started > 300:
            raise TimeoutError("the small file never became searchable")
        time.sleep(0.05)


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([str(_ENCLAVE), "worker", "-c", "1", "--loglevel", "WARNING"],
                            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    return proc


def _wait(container: Container, job_id: str):  # type: ignore[no-untyped-def]
    while True:
        job = container.jobs.get(job_id)
        if job.status == DONE:
            return job
        time.sleep(0.1)
