"""Real Celery workers (subprocesses), real Redis, RabbitMQ and PostgreSQL as running here.

Each test gets a database of its own in PostgreSQL, a queue of its own on the broker, and
a data folder of its own; workers are ``enclave worker`` processes started with that
environment and killed (their whole process group) at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.container import Container
from core.jobs import CANCELLED, DONE, Job
from core.ports import Embedder
from core.settings import Settings
from tests.conftest import ENCLAVE

REDIS = "redis://127.0.0.1:6379/9"  # a database of its own: tests leave nothing in 0
RABBIT = "amqp://guest:guest@127.0.0.1:5672//"


@dataclass
class Cluster:
    """Workers and a submitting container that share one database, broker queue and store."""

    env: dict[str, str]
    container: Container
    logs: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, concurrency: int = 1, **extra: str) -> subprocess.Popen[bytes]:
        log = self.logs / f"worker-{len(self.workers)}.log"
        proc = subprocess.Popen(
            [str(ENCLAVE), "worker", "-c", str(concurrency), "--loglevel", "INFO"],
            env={**self.env, **extra}, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killing it kills its pool too
        )
        self.workers.append(proc)
        deadline = time.monotonic() + 90
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        return proc

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def wait(self, job_id: str, timeout_s: float = 240, until: Callable[[Job], bool] | None = None
             ) -> Job:
        done = until or (lambda j: j.status in (DONE, CANCELLED))
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.container.jobs.get(job_id)
            if done(job):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job.status}: {job.counts}\n"
                                     + self.tail_logs())
            time.sleep(0.3)

    def tail_logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in self.logs.glob("*.log"))

    def close(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                self.kill(proc)
        self.container.close()


def cluster_env(tmp_path: Path, database_url: str, broker_url: str, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env.update({
        "ENCLAVE_DATA_DIR": str(tmp_path / "data"),
        "ENCLAVE_DATABASE_URL": database_url,
        "ENCLAVE_JOBS__BROKER_URL": broker_url,
        "ENCLAVE_JOBS__QUEUE": f"enclave-test-{uuid.uuid4().hex[:10]}",
        "ENCLAVE_JOBS__HEARTBEAT_S": "1",
        "ENCLAVE_JOBS__STALE_AFTER_S": "5",
        "ENCLAVE_QDRANT__HOLD_OPEN": "false",
        "ENCLAVE_QDRANT__LOCK_WAIT_S": "60",
        # Two worker processes on two cores: one torch thread each.
        "ENCLAVE_EMBEDDING__THREADS": "1",
    })
    env.update(overrides)
    return env


@pytest.fixture
def make_cluster(
    tmp_path: Path, pg_url: str, real_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(broker_url: str = REDIS, **overrides: str) -> Cluster:
        env = cluster_env(tmp_path, pg_url, broker_url, **overrides)
        for key, value in env.items():
            if key.startswith("ENCLAVE_"):
                monkeypatch.setenv(key, value)
        logs = tmp_path / "logs"
        logs.mkdir(exist_ok=True)
        cluster = Cluster(env, Container(Settings(), embedder=real_embedder), logs)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


def write_texts(folder: Path, count: int, paragraphs: int = 3, prefix: str = "memo") -> list[Path]:
    """Distinct small text documents (the words differ, so no two share a chunk)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        body = "\n\n".join(
            f"Memo {prefix} {n}, paragraph {p}: the {_word(n)} committee reviewed item "
            f"{n * 100 + p} and approved budget line {_word(n + p)} for quarter {p % 4 + 1}."
            for p in range(paragraphs)
        )
        path = folder / f"{prefix}-{n:03d}.txt"
        path.write_text(body, encoding="utf-8")
        paths.append(path)
    return paths


def write_bad(folder: Path) -> list[Path]:
    """Five files that fail, each for a reason of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    bad = {
        "broken.pdf": b"%PDF-1.7 this is not really a pdf",
        "empty.txt": b"",
        "blank.md": b"   \n\n  \n",
        "zip-garbage.docx": b"PK\x03\x04 not a real office file",
        "data.bin": bytes(range(256)) * 4,
    }
    for name, data in bad.items():
        (folder / name).write_bytes(data)
    return [folder / n for n in bad]


_WORDS = ("amber basalt cedar dune ember fjord garnet harbor indigo juniper kestrel lagoon "
          "meadow nectar opal prairie quartz raven sierra tundra umber vale willow yarrow").split()


def _word(n: int) -> str:
    return _WORDS[n % len(_WORDS)] + _WORDS[(n // len(_WORDS)) % len(_WORDS)]
