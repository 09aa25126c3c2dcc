from __future__ import annotations

import subprocess
from pathlib import Path

from retrieval.edge_store import EdgeStore
from tests.conftest import ENCLAVE


def test_a_second_process_gets_a_clear_message_while_the_store_is_held(cli_env, tmp_path: Path):
    data = Path(cli_env["ENCLAVE_DATA_DIR"])
    held = EdgeStore(data / "qdrant-edge" / "enclave")
    held.ensure_collection(384)
    try:
        env = {**cli_env, "ENCLAVE_QDRANT__LOCK_WAIT_S": "0.5"}
        done = subprocess.run([str(ENCLAVE), "search", "anything"], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 1
        assert "in use by another enclave process" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        held.close()
    done = subprocess.run([str(ENCLAVE), "search", "anything", "--json"], env=cli_env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def _take_turns(path: str, who: str, docs: int) -> int:
    """One process's share of writes, each document in a session of its own."""
    import random
    from datetime import UTC, datetime

    from core.ports import StoredChunk
    from core.types import Chunk, Document, SparseVector, make_chunk_id, make_doc_id

    store = EdgeStore(Path(path), lock_wait_s=120, hold_open=False)
    store.ensure_collection(8)
    rng = random.Random(who)
    kept = 0
    for n in range(docs):
        doc = Document(make_doc_id(f"/{who}/{n}"), f"/{who}/{n}", "v1", ())
        points = []
        for k in range(20):
            text = f"{who} document {n} chunk {k}"
            chunk = Chunk(make_chunk_id(doc.doc_id, "v1", k), doc.doc_id, "v1", text, 1, 1, 0,
                          len(text), {"ordinal": k})
            sparse = SparseVector((rng.randrange(1000), 1000 + rng.randrange(1000)), (1.0, 0.5))
            points.append(StoredChunk(chunk, doc, "t", [rng.random() for _ in range(8)], sparse,
                                      datetime.now(UTC)))
        with store.session():
            store.upsert(points)
            assert store.count(doc.doc_id, "v1") == 20
            if n % 3 == 0:
                store.delete(doc.doc_id)
            else:
                kept += 20
    return kept


def test_processes_taking_turns_keep_the_store_whole(tmp_path: Path) -> None:
    """Workers open and close one embedded store in turns: nothing is lost or corrupted.

    Without a lock around loading, this failed within seconds ("failed to delete leftover
    segment", "tracker journal is shorter than expected").
    """
    import multiprocessing

    path = str(tmp_path / "shared-store")
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        kept = pool.starmap(_take_turns, [(path, who, 45) for who in ("a", "b", "c")])
    store = EdgeStore(Path(path))
    store.ensure_collection(8)
    try:
        assert store.count() == sum(kept) == 3 * 30 * 20
    finally:
        store.close()


def test_optimize_indexes_what_was_written_and_search_agrees(tmp_path: Path) -> None:
    """The embedded engine never indexes by itself: written segments stay brute-force until
    optimize() builds their HNSW index (ingest calls it at the end of a run)."""
    from datetime import UTC, datetime

    import numpy as np

    from core.ports import StoredChunk
    from core.types import Chunk, Document, SparseVector, make_chunk_id, make_doc_id

    rng = np.random.default_rng(5)
    store = EdgeStore(tmp_path / "store")
    store.ensure_collection(384)
    try:
        vectors = rng.normal(size=(12_000, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        now = datetime.now(UTC)
        for start in range(0, len(vectors), 256):  # as ingest writes: batches of 256
            doc = Document(make_doc_id(f"/d/{start}"), f"/d/{start}", "v1", ("g",))
            points = []
            for k in range(start, min(start + 256, len(vectors))):
                chunk = Chunk(make_chunk_id(doc.doc_id, "v1", k), doc.doc_id, "v1", f"c{k}",
                              None, None, 0, 2, {"ordinal": k})
                points.append(StoredChunk(chunk, doc, "t", vectors[k].tolist(),
                                          SparseVector((k,), (1.0,)), now))
            store.upsert(points)
        query = vectors[:5] + 0.05 * rng.normal(size=(5, 384)).astype(np.float32)
        before = [[h.chunk.chunk_id for h in store.nearest(q.tolist(), ["g"], 10)] for q in query]
        # The sparse vectors are indexed as written (an inverted index); the dense ones not.
        assert store._shard.info().indexed_vectors_count == 12_000
        assert store.optimize() is True
        info = store._shard.info()
        assert info.indexed_vectors_count == 24_000, info
        after = [[h.chunk.chunk_id for h in store.nearest(q.tolist(), ["g"], 10)] for q in query]
        # Approximate now, but each query still finds the point it was made from, first.
        assert [a[0] for a in after] == [b[0] for b in before]
        assert store.count() == 12_000
        assert store.optimize() is False  # nothing left to do
    finally:
        store.close()


def test_a_store_whose_creation_was_cut_short_gets_its_indexes_on_the_next_open(tmp_path: Path) -> None:
    """A worker killed between creating the shard and indexing it (its time limit struck)
    left a store that could not facet; the next open finishes the creation."""
    import qdrant_edge as qe

    from retrieval import schema

    path = tmp_path / "cut-short"
    path.mkdir()
    config = qe.EdgeConfig(
        vectors={schema.DENSE: qe.EdgeVectorParams(size=4, distance=qe.Distance.Cosine)},
        sparse_vectors={schema.SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
    )
    qe.EdgeShard.create(str(path), config).close()  # as the killed process left it: no indexes
    store = EdgeStore(path, lock_wait_s=5, hold_open=False)
    store.ensure_collection(4)
    assert store.doc_counts() == {}  # faceting on doc_id needs its index
    assert (path / "enclave-indexes-ready").exists()
    store.close()


def test_a_store_with_indexes_read_into_memory_gets_them_memory_mapped(tmp_path: Path) -> None:
    """Keyword indexes read into the heap at every open were most of what reopening the
    store cost at 100k chunks (processes taking turns reopen it often); a store made
    before gets doc_id and version rebuilt as mapped files on its next open (groups, which
    every search filters on, stays in memory), and its filters still work."""
    from datetime import UTC, datetime

    import qdrant_edge as qe

    from core.ports import StoredChunk
    from core.types import Chunk, Document, SparseVector, make_chunk_id, make_doc_id
    from retrieval import schema

    path = tmp_path / "before"
    written = EdgeStore(path, hold_open=False)
    written.ensure_collection(4)
    doc = Document(make_doc_id("/a"), "/a", "v1", ("hr",))
    chunk = Chunk(make_chunk_id(doc.doc_id, "v1", 0), doc.doc_id, "v1", "text", 1, 1, 0, 4, {})
    written.upsert([StoredChunk(chunk, doc, "t", [1.0, 0.0, 0.0, 0.0],
                                SparseVector((1,), (1.0,)), datetime.now(UTC))])
    shard = qe.EdgeShard.load(str(path))
    for field in schema.INDEXED_FIELDS:  # as stores were made before: read into memory
        shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
    assert all(i.params is None for i in shard.info().payload_schema.values())
    shard.close()
    (path / "enclave-indexes-ready").write_text("")

    store = EdgeStore(path)
    store.ensure_collection(4)
    try:
        index = store._shard.info().payload_schema
        assert {f: index[f].params.memory for f in schema.INDEXED_FIELDS} == {
            "doc_id": qe.Memory.Cached, "version": qe.Memory.Cached, "groups": qe.Memory.Pinned}
        assert store.doc_counts() == {doc.doc_id: 1}
        assert store.count(doc.doc_id, "v1") == 1
        assert [h.chunk.chunk_id for h in store.nearest([1.0, 0.0, 0.0, 0.0], ["hr"], 5)] == [
            chunk.chunk_id]
        assert store.nearest([1.0, 0.0, 0.0, 0.0], ["finance"], 5) == []
    finally:
        store.close()
