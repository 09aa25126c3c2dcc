"""A yielding holder (serve) and per-operation writers (workers) sharing one embedded store,
as real processes: turns within a bound, no stale reads, kills survived."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from core.errors import StoreError
from core.ports import StoredChunk
from core.types import Chunk, Document, SparseVector, make_chunk_id, make_doc_id
from retrieval.edge_store import EdgeStore
from tests.conftest import ENCLAVE

DIM = 8
PER_DOC = 20
# A writer must have the store this soon after asking, while the holder searches back to
# back: the holder looks every 25 ms and finishes the search in progress first. Generous,
# because two shared cores also run the test.
TURN_BOUND_S = 2.0


def _doc(who: str, n: int) -> Document:
    return Document(make_doc_id(f"/{who}/{n}"), f"/{who}/{n}", "v1", ())


def _points(who: str, n: int) -> list[StoredChunk]:
    doc = _doc(who, n)
    rng = random.Random(f"{who}/{n}")
    points = []
    for k in range(PER_DOC):
        text = f"{who} document {n} chunk {k}"
        chunk = Chunk(make_chunk_id(doc.doc_id, "v1", k), doc.doc_id, "v1", text, 1, 1, 0,
                      len(text), {"ordinal": k})
        sparse = SparseVector((rng.randrange(1000), 1000 + rng.randrange(1000)), (1.0, 0.5))
        points.append(StoredChunk(chunk, doc, "t", [rng.uniform(-1, 1) for _ in range(DIM)],
                                  sparse, datetime.now(UTC)))
    return points


def _writer(path: str, conn: Connection) -> None:
    """A worker's share: each ("write", n) is one document in one per-operation session;
    ("hang", n) writes a document and then stays in its session until killed."""
    store = EdgeStore(Path(path), lock_wait_s=30, hold_open=False)
    store.ensure_collection(DIM)
    conn.send("ready")
    while (message := conn.recv()) is not None:
        kind, n = message
        asked = time.perf_counter()
        with store.session():
            waited = time.perf_counter() - asked
            store.upsert(_points("w", n))
            if kind == "hang":
                conn.send(("in session", waited))
                time.sleep(600)
        conn.send(("written", waited))
    store.close()


def _holder(path: str, conn: Connection) -> None:
    """Serve's share: the store held open between searches, yielding when asked."""
    store = EdgeStore(Path(path), lock_wait_s=30, hold_open="yield")
    store.ensure_collection(DIM)
    store.upsert(_points("base", 0))
    conn.send("holding")
    time.sleep(600)


@contextmanager
def _process(target: Any, path: Path) -> Iterator[tuple[multiprocessing.Process, Connection]]:
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=target, args=(str(path), theirs), daemon=True)
    proc.start()
    try:
        yield proc, ours
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(30)


def _receive(conn: Connection, timeout_s: float = 120) -> Any:
    assert conn.poll(timeout_s), "the other process did not answer in time"
    return conn.recv()


class _Searching:
    """A thread that searches the holder back to back, as serve under load would."""

    def __init__(self, store: EdgeStore, who: str, n: int) -> None:
        self.store = store
        self.query = _points(who, n)[0].dense
        self.errors: list[BaseException] = []
        self.counts: set[int] = set()
        self.searches = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Searching:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                hits = self.store.hybrid_search(self.query, SparseVector((), ()), [], 5, 20, "rrf")
                assert hits, "a search found nothing"
                self.counts.add(self.store.count())
                self.searches += 1
            except BaseException as exc:  # noqa: BLE001 - every failure is the finding
                self.errors.append(exc)


def _finds(store: EdgeStore, who: str, n: int) -> bool:
    point = _points(who, n)[3]
    hits = store.nearest(point.dense, [], 1)
    return bool(hits) and hits[0].chunk.chunk_id == point.chunk.chunk_id


def test_a_yielding_holder_gives_a_writer_its_turn_and_never_serves_stale_results(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store"
    holder = EdgeStore(path, lock_wait_s=30, hold_open="yield")
    holder.ensure_collection(DIM)
    holder.upsert(_points("base", 0))
    try:
        # Two threads searching back to back, as serve's thread pool under load: the one
        # that finishes a search may take the store's lock again before the watcher does.
        with _process(_writer, path) as (_, conn), _Searching(holder, "base", 0) as load, \
                _Searching(holder, "base", 0) as more:
            assert _receive(conn) == "ready"
            for n in range(6):
                conn.send(("write", n))
                kind, waited = _receive(conn)
                assert kind == "written"
                assert waited < TURN_BOUND_S, f"the writer waited {waited:.2f} s for its turn"
                # Acknowledged, so the holder's next reads see it: it read the store again
                # from disk after the writer had it.
                assert holder.count(_doc("w", n).doc_id) == PER_DOC
                assert _finds(holder, "w", n)
            conn.send(None)
        assert load.errors == more.errors == []
        assert load.searches > 0 and more.searches > 0
        assert holder.count() == PER_DOC * 7
    finally:
        holder.close()


def test_a_writer_killed_mid_session_leaves_the_holder_searching(tmp_path: Path) -> None:
    path = tmp_path / "store"
    holder = EdgeStore(path, lock_wait_s=30, hold_open="yield")
    holder.ensure_collection(DIM)
    holder.upsert(_points("base", 0))
    try:
        with _Searching(holder, "base", 0) as load:
            with _process(_writer, path) as (proc, conn):
                assert _receive(conn) == "ready"
                conn.send(("hang", 0))
                assert _receive(conn)[0] == "in session"
                time.sleep(0.5)  # the holder's searches now wait for the writer
                before = load.searches
                assert proc.pid is not None
                os.kill(proc.pid, signal.SIGKILL)
                proc.join(30)
            deadline = time.monotonic() + 10
            while load.searches <= before + 3:
                assert time.monotonic() < deadline, "searches did not resume after the kill"
                time.sleep(0.05)
        assert load.errors == []
        # Old or new, nothing in between: the killed session's upsert was one batch.
        assert load.counts <= {PER_DOC, 2 * PER_DOC}, load.counts
        # The next writer gets its turn as usual.
        with _process(_writer, path) as (_, conn):
            assert _receive(conn) == "ready"
            conn.send(("write", 1))
            assert _receive(conn)[0] == "written"
            conn.send(None)
        assert holder.count(_doc("w", 1).doc_id) == PER_DOC
        assert _finds(holder, "w", 1)
    finally:
        holder.close()


def test_a_killed_holder_leaves_the_store_to_writers(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with _process(_holder, path) as (proc, conn):
        assert _receive(conn) == "holding"
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    writer = EdgeStore(path, lock_wait_s=TURN_BOUND_S, hold_open=False)
    writer.ensure_collection(DIM)
    writer.upsert(_points("w", 0))
    assert writer.count() == 2 * PER_DOC
    writer.close()


def test_a_holding_process_makes_a_yielding_one_wait_then_fail_clearly(tmp_path: Path) -> None:
    """`enclave ingest` (hold) beside serve (yield): serve gives way at once, its searches
    wait for the ingest up to lock_wait_s, then fail with the usual message; after the
    ingest they work again and see what it wrote."""
    path = tmp_path / "store"
    serve = EdgeStore(path, lock_wait_s=0.5, hold_open="yield")
    serve.ensure_collection(DIM)
    serve.upsert(_points("base", 0))
    ingest = EdgeStore(path, lock_wait_s=TURN_BOUND_S, hold_open=True)
    ingest.ensure_collection(DIM)  # would fail within TURN_BOUND_S had serve not yielded
    ingest.upsert(_points("w", 0))
    try:
        with pytest.raises(StoreError, match="in use by another enclave process"):
            serve.count()
    finally:
        ingest.close()
    assert serve.count() == 2 * PER_DOC
    assert _finds(serve, "w", 0)
    serve.close()


def test_the_cli_searches_beside_a_yielding_holder(cli_env: dict[str, str]) -> None:
    """`enclave search` beside `enclave serve`: serve gives the store up for the command's
    run (the command asks through .want) and takes it back afterwards."""
    data = Path(cli_env["ENCLAVE_DATA_DIR"])
    serve = EdgeStore(data / "qdrant-edge" / "enclave", lock_wait_s=30, hold_open="yield")
    serve.ensure_collection(384)
    try:
        env = {**cli_env, "ENCLAVE_QDRANT__LOCK_WAIT_S": "5"}
        done = subprocess.run([str(ENCLAVE), "search", "anything", "--json"], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert serve.count() == 0
    finally:
        serve.close()
