"""`enclave serve` (the store held open, yielding) beside real `enclave worker`s, the
deployment the README describes for one machine: what a finished job wrote is found by
the very next search, searches during the job never fail, a killed worker changes
neither."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from core.jobs import DONE
from tests.conftest import ENCLAVE, free_port, wait_for_http
from tests.workers.conftest import Cluster, write_texts

QUESTION = "Which hangar keeps the quokka zeppelin?"


def _write_new(folder: Path, count: int, paragraphs: int = 3) -> list[Path]:
    """Documents about words nothing else holds, so a search for them finds only these."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        body = "\n\n".join(
            f"The quokka zeppelin {n} is kept in hangar {n + 7}; paragraph {p} notes its "
            f"mooring mast and the helium budget for quarter {p % 4 + 1}."
            for p in range(paragraphs)
        )
        path = folder / f"zeppelin-{n:02d}.txt"
        path.write_text(body, encoding="utf-8")
        paths.append(path)
    return paths


@contextmanager
def _serve(cluster: Cluster) -> Iterator[str]:
    """`enclave serve` with its own default sharing (yield), on the cluster's data; a
    worker starts meanwhile (both load a model: starting them together saves the wait)."""
    port = free_port()
    env = {k: v for k, v in cluster.env.items() if k != "ENCLAVE_QDRANT__HOLD_OPEN"}
    env |= {"ENCLAVE_ANSWER__MODE": "extractive", "ENCLAVE_SERVE__RATE_PER_MINUTE": "100000",
            "ENCLAVE_QDRANT__LOCK_WAIT_S": "10"}
    log = cluster.logs / "serve.log"
    proc = subprocess.Popen([str(ENCLAVE), "serve", "--port", str(port)], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        cluster.start_worker()
        wait_for_http(f"{base}/healthz", proc, 120)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


class _Asking:
    """Chats back to back through the API from a thread, recording every status."""

    def __init__(self, base: str, key: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=60,
                                 headers={"Authorization": f"Bearer {key}"})
        self.failures: list[str] = []
        self.answered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def ask(self, question: str) -> list[str]:
        """The sources a chat cites (answered or closest passages)."""
        reply = self.http.post("/v1/chat", json={"question": question})
        assert reply.status_code == 200, reply.text
        return [c["source"] for c in reply.json()["citations"]]

    def __enter__(self) -> _Asking:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        self.http.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                reply = self.http.post("/v1/chat", json={"question": QUESTION})
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))
                continue
            if reply.status_code == 200:
                self.answered += 1
            else:
                self.failures.append(f"{reply.status_code} {reply.text[:300]}")
            # A user's pace rather than a flood: the worker needs the cores too.
            self._stop.wait(0.1)


def _zeppelins(sources: list[str]) -> set[str]:
    return {Path(s).name for s in sources if Path(s).name.startswith("zeppelin-")}


def test_a_finished_job_is_found_by_the_next_search_and_searches_never_fail(
    make_cluster, tmp_path: Path
) -> None:
    cluster: Cluster = make_cluster()
    key = cluster.container.users.add("bob", ["hr"], ["employee"])
    [new] = _write_new(tmp_path / "new", 1)
    with _serve(cluster) as base, _Asking(base, key) as asking:
        # Serve's first search creates the store, and serve holds it from then on.
        assert not _zeppelins(asking.ask(QUESTION))
        job = cluster.container.job_runner().submit([tmp_path / "new"], ["hr"], owner="alice")
        job = cluster.wait(job.job_id, timeout_s=120)
        assert job.status == DONE and job.counts["done"] == 1
        # Done means written and acknowledged: the very next search finds it.
        assert _zeppelins(asking.ask(QUESTION)) == {new.name}
    assert asking.failures == []
    assert asking.answered > 0


def test_a_worker_killed_mid_job_beside_serve_fails_no_search(
    make_cluster, tmp_path: Path
) -> None:
    """The jobs kill test with serve holding the store: the killed worker's flocks go with
    it, searches go on with old or new results, and the next worker finishes the job."""
    cluster: Cluster = make_cluster()
    key = cluster.container.users.add("bob", ["hr"], ["employee"])
    write_texts(tmp_path / "share", 4, paragraphs=60)
    with _serve(cluster) as base:
        [first] = cluster.workers
        with _Asking(base, key) as asking:
            asking.ask(QUESTION)
            job = cluster.container.job_runner().submit([tmp_path / "share"], ["hr"])
            cluster.wait(job.job_id, timeout_s=120,
                         until=lambda j: j.counts["done"] >= 1 and j.counts["running"] == 1)
            cluster.kill(first)  # SIGKILL to the worker and its pool process, mid-document
            time.sleep(1)
            answered = asking.answered
            cluster.start_worker()
            job = cluster.wait(job.job_id, timeout_s=180)
            assert job.status == DONE and job.counts["done"] == 4
            assert asking.answered > answered
        assert asking.failures == []
