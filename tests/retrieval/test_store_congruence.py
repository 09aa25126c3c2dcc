"""One suite of operations on the embedded engine and on qdrant-client; the results must match.

qdrant-client's local mode runs the very calls that go to a Qdrant server, so it stands
in for one here (CI has no server).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.ports import StoredChunk, VectorStore
from core.types import Chunk, Document, Hit, make_chunk_id, make_doc_id
from retrieval.client_store import ClientStore
from retrieval.edge_store import EdgeStore
from retrieval.sparse import Bm25SparseEncoder

WORDS = (
    "invoice payroll audit budget travel hotel laptop password policy leave holiday robot arm "
    "maintenance revenue hiring office security incident phishing expense meal approval"
).split()
GROUPS = ["hr", "finance", "eng", "legal"]
DIM = 64


def _corpus(seed: int = 7, docs: int = 40) -> list[StoredChunk]:
    # Random dense vectors and texts of random length keep scores distinct: tied scores
    # may be ordered differently by two engines, and that is not a disagreement.
    rng = np.random.default_rng(seed)
    sparse = Bm25SparseEncoder()
    now = datetime(2026, 11, 28, tzinfo=UTC)
    points = []
    for d in range(docs):
        acl = tuple(sorted(rng.choice(GROUPS, size=int(rng.integers(0, 3)), replace=False)))
        # Half carry a display name; the other half are stored as before display names.
        meta = {"display": f"team/{d}.txt"} if d % 2 else {}
        doc = Document(make_doc_id(f"/docs/{d}.txt"), f"/docs/{d}.txt", f"v{d % 3}", acl, meta)
        for n in range(int(rng.integers(1, 4))):
            # A length of its own per chunk: equal BM25 weights (ties) become unlikely.
            text = " ".join(rng.choice(WORDS, size=4 + len(points)))
            chunk = Chunk(make_chunk_id(doc.doc_id, doc.version_sha256, n), doc.doc_id,
                          doc.version_sha256, text, 1, 1, 0, len(text), {"ordinal": n})
            points.append(StoredChunk(chunk, doc, f"Doc {d}", _unit(rng), sparse.encode_document(text),
                                      now))
    return points


def _unit(rng: np.random.Generator, dim: int = 64) -> list[float]:
    v = rng.normal(size=dim)
    return (v / np.linalg.norm(v)).tolist()


def _ranked(hits: list[Hit]) -> list[tuple[float, str, str]]:
    # Order within a tie is an engine's choice; compare ties as sets.
    return sorted((-round(h.score, 4), h.chunk.chunk_id, h.chunk.text) for h in hits)


def _run_suite(store: VectorStore) -> list[Any]:
    sparse = Bm25SparseEncoder()
    queries = np.random.default_rng(11)
    points = _corpus()
    store.ensure_collection(DIM)
    store.upsert(points[:50])
    store.upsert(points[50:])
    results: list[Any] = [store.count(), sorted(store.doc_counts().items())]
    for query in ("hotel travel expense", "password security incident", "robot maintenance"):
        for groups in ((), ("hr",), ("finance", "legal"), tuple(GROUPS)):
            for fusion in ("rrf", "dbsf"):
                hits = store.hybrid_search(
                    _unit(queries), sparse.encode_query(query), groups, 8, 30, fusion
                )
                results.append(_ranked(hits))
            # Each kind alone, as the dense-only and sparse-only modes ask.
            results.append(_ranked(store.nearest(_unit(queries), groups, 8)))
            results.append(_ranked(store.nearest(sparse.encode_query(query), groups, 8)))
    first_doc = points[0].chunk.doc_id
    results.append(sorted(store.versions_of(first_doc)))
    store.set_access(first_doc, ["legal"])
    store.delete(points[-1].chunk.doc_id)
    store.delete(points[5].chunk.doc_id, points[5].chunk.version)
    results.append(store.count())
    results.append(store.count(first_doc))
    results.append(sorted(store.doc_counts().items()))
    q = "invoice payroll audit"
    # After deletions the edge engine keeps counting deleted points in its IDF statistics
    # until its optimizer vacuums them, so scores drift slightly: compare what is visible.
    hits = store.hybrid_search(_unit(queries), sparse.encode_query(q), ("legal",), 100, 100, "rrf")
    results.append(sorted(h.chunk.chunk_id for h in hits))
    retrieved = store.retrieve([p.chunk.chunk_id for p in points[:3]])
    results.append(sorted((c.chunk_id, c.text, c.meta["groups"], c.display) for c in retrieved))
    # Display names (what employees see instead of the source path) of every chunk left.
    left = store.retrieve([p.chunk.chunk_id for p in points])
    results.append(sorted((c.chunk_id, c.display) for c in left))
    return results


def test_edge_and_client_stores_agree(tmp_path: Path):
    edge = EdgeStore(tmp_path / "edge")
    client = ClientStore.connect("congruence", path=str(tmp_path / "local"))
    try:
        edge_results = _run_suite(edge)
        client_results = _run_suite(client)
    finally:
        edge.close()
        client.close()
    assert len(edge_results) == len(client_results)
    for i, (a, b) in enumerate(zip(edge_results, client_results, strict=True)):
        assert a == b, f"operation {i} differs"
    # The suite is not vacuous: searches found things and the filter restricted them.
    searches = [r for r in edge_results if isinstance(r, list) and r and isinstance(r[0], tuple)
                and len(r[0]) == 3]
    assert searches and all(len(r) <= 8 for r in searches[:-1])
    displays = {display for _, display in edge_results[-1]}
    # Stored ones, and the file name for chunks stored before display names.
    assert any(d.startswith("team/") for d in displays) and any("/" not in d for d in displays)
    public_only = edge_results[2]
    everyone = edge_results[2 + 4 * 3]
    assert len(public_only) < len(everyone) or public_only != everyone
