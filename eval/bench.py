"""Benchmarks behind ``enclave bench``: figures to read, not tests to pass.

``bench_ingest`` runs the real pipeline over real files in a throwaway data dir, once per
embedding mode, so a faster embedder is reported as a ratio measured in the same run.
``bench_search`` times the real search path over a large synthetic store: embedding
100k real chunks would take hours on a small CPU, and latency depends on the store's
size and the access filter's selectivity, not on what the text says.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, get_args

import numpy as np
import numpy.typing as npt

from core.container import Container
from core.ports import SparseEncoder, StoredChunk
from core.registry import Registry
from core.settings import EmbeddingSettings, Settings
from core.types import Chunk, Document, Principal, make_chunk_id, make_doc_id
from retrieval.edge_store import EdgeStore
from retrieval.search import OVERFETCH, Searcher

SEED = 20240601
GROUP_POOL = 50
CHUNKS_PER_DOC = 50
PUBLIC_SHARE = 0.1
LOAD_BATCH = 1000
WARMUP_QUERIES = 10
SEARCH_K = 10
# The embedding modes a benchmark can compare: every real one (fake is for unit tests).
EMBEDDINGS = tuple(
    m for m in get_args(EmbeddingSettings.model_fields["mode"].annotation) if m != "fake"
)

# -- ingest ------------------------------------------------------------------------------------


def bench_ingest(
    paths: Sequence[Path], embeddings: Sequence[str] = ("sentence-transformers",)
) -> dict[str, Any]:
    """Ingest ``paths`` once per embedding mode, each into a fresh data dir: seconds and
    rates per stage, and each run's rates as a ratio of the first run's (same machine,
    same files, one after the other)."""
    from ingest.parse import quiet_parsers

    quiet_parsers()
    runs = [_ingest_once(paths, mode) for mode in embeddings]
    first = runs[0]
    for run in runs:
        run["ratio_vs_first"] = {
            key.removesuffix("_chunks_per_s"): round(_ratio(run[key], first[key]), 2)
            for key in run if key.endswith("_chunks_per_s")
        }
    return {"runs": runs}


def _ingest_once(paths: Sequence[Path], embedding: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="enclave-bench-") as tmp:
        embedder = EmbeddingSettings.model_validate({"mode": embedding})
        container = Container(Settings(data_dir=Path(tmp), embedding=embedder))
        try:
            load_s = _warm_up(container)
            started = time.perf_counter()
            report = container.ingestor.ingest(paths)
            total_s = time.perf_counter() - started
            model = container.embedder.name
        finally:
            container.close()
    t = report.times
    stages = {"parse": t.parse, "chunk": t.chunk, "embed": t.embed, "store": t.store}
    figures: dict[str, Any] = {
        "embedding": embedding,
        "model": model,
        "files": t.files,
        "pages": t.pages,
        "chunks": t.chunks,
        "failed": report.count("failed"),
        "model_load_s": load_s,
    }
    figures |= {f"{name}_s": seconds for name, seconds in stages.items()}
    # Discovery, hashing and registry writes: whatever no stage clock saw.
    figures["other_s"] = max(0.0, total_s - sum(stages.values()))
    figures["total_s"] = total_s
    for name, seconds in stages.items():
        figures[f"{name}_pages_per_s"] = _rate(t.pages, seconds)
        figures[f"{name}_chunks_per_s"] = _rate(t.chunks, seconds)
    figures["pages_per_s"] = _rate(t.pages, total_s)
    figures["total_chunks_per_s"] = _rate(t.chunks, total_s)
    return figures


def _warm_up(container: Container) -> float:
    """Load the model, tokenizer and stemmer now, so no stage's clock pays for loading them."""
    started = time.perf_counter()
    container.embedder.embed(["warm up"])
    container.embedder.tokenize("warm up")
    container.sparse.encode_document("warm up")
    return time.perf_counter() - started


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def _ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline > 0 else 0.0


# -- search ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Corpus:
    """Seeded synthetic text: Zipf-like word frequencies, like real prose's posting lists."""

    words: npt.NDArray[np.str_]
    weights: npt.NDArray[np.float64]

    @classmethod
    def make(cls, rng: np.random.Generator, size: int = 5000) -> _Corpus:
        syllables = ["ka", "lo", "mi", "ren", "tas", "vo", "del", "qui", "bar", "sen", "tor",
                     "ul", "fen", "gri", "pax", "zo", "nel", "rup", "ost", "ime"]
        seen: dict[str, None] = dict.fromkeys(_BASE_WORDS)
        while len(seen) < size:
            n = int(rng.integers(2, 5))
            seen.setdefault("".join(rng.choice(syllables, size=n)), None)
        words = np.array(list(seen), dtype=np.str_)
        ranks = np.arange(1, len(words) + 1, dtype=np.float64)
        weights = 1.0 / ranks**1.05
        return cls(words, weights / weights.sum())

    def texts(self, rng: np.random.Generator, n: int, low: int, high: int) -> list[str]:
        lengths = rng.integers(low, high, size=n)
        drawn = rng.choice(len(self.words), size=int(lengths.sum()), p=self.weights)
        cuts = np.cumsum(lengths)[:-1]
        return [" ".join(self.words[part].tolist()) for part in np.split(drawn, cuts)]


_BASE_WORDS = (
    "revenue income quarter fiscal operating margin cash flow segment growth expense cost "
    "product service customer market share risk liability asset equity debt interest tax "
    "inventory supply demand sales gross net loss profit dividend stock repurchase capital "
    "investment research development employee headcount lease contract agreement policy "
    "travel hotel meal approval manager invoice payment vendor security access password "
    "network server storage backup incident compliance audit regulation privacy data "
    "report forecast guidance outlook currency exchange rate inflation acquisition merger"
).split()


def bench_search(chunks: int = 100_000, queries: int = 200) -> dict[str, Any]:
    """Latency of access-filtered hybrid search over ``chunks`` synthetic points."""
    rng = np.random.default_rng(SEED)
    corpus = _Corpus.make(rng)
    groups = [f"group-{i:02d}" for i in range(GROUP_POOL)]
    with tempfile.TemporaryDirectory(prefix="enclave-bench-") as tmp:
        root = Path(tmp)
        container = Container(Settings(data_dir=root))
        store = EdgeStore(root / "qdrant-edge" / "bench")
        registry = Registry(f"sqlite:///{root / 'bench.db'}")
        try:
            figures: dict[str, Any] = {"chunks": chunks, "queries": queries, "k": SEARCH_K}
            figures["model_load_s"] = _warm_up(container)
            embedder, sparse = container.embedder, container.sparse
            store.ensure_collection(embedder.dim)
            documents = _documents(rng, chunks, groups)
            figures["documents"] = len(documents)
            figures |= _load(store, rng, corpus, documents, chunks, embedder.dim, sparse)
            figures["register_s"] = _timed(lambda: _register(registry, documents, chunks))
            searcher = Searcher(container.settings.search, store, embedder, sparse, registry)
            few = min(queries, 50)
            # As written, before indexing: what search cost before ingest indexed at its end.
            unindexed = _time_queries(searcher, store, rng, corpus, groups, few)
            figures |= {f"unindexed_{k}": v for k, v in unindexed.items() if k.startswith("e2e_p")}
            figures |= _optimize(store)
            figures |= _time_queries(searcher, store, rng, corpus, groups, queries)
            # `enclave serve` and workers open the store per operation so that processes can
            # take turns at it (ENCLAVE_QDRANT__HOLD_OPEN=false): that opening is timed too.
            store.close()
            shared = EdgeStore(store.path, hold_open=False)
            shared.ensure_collection(embedder.dim)
            taking_turns = Searcher(container.settings.search, shared, embedder, sparse, registry)
            reopened = _time_queries(taking_turns, shared, rng, corpus, groups, few)
            figures |= {f"reopened_{k}": v for k, v in reopened.items() if k.startswith("e2e_p")}
            return figures
        finally:
            store.close()
            registry.close()
            container.close()


def _documents(rng: np.random.Generator, chunks: int, groups: list[str]) -> list[Document]:
    count = -(-chunks // CHUNKS_PER_DOC)
    docs = []
    for d in range(count):
        source = f"/bench/doc-{d:06d}.pdf"
        acl: tuple[str, ...] = ()
        if rng.random() >= PUBLIC_SHARE:
            acl = _some_groups(rng, groups, 1, 3)
        docs.append(Document(make_doc_id(source), source, f"{d:064x}", acl))
    return docs


def _some_groups(
    rng: np.random.Generator, groups: list[str], low: int, high: int
) -> tuple[str, ...]:
    picked = rng.choice(groups, size=int(rng.integers(low, high + 1)), replace=False)
    return tuple(sorted(str(g) for g in picked))


def _load(
    store: EdgeStore,
    rng: np.random.Generator,
    corpus: _Corpus,
    documents: list[Document],
    chunks: int,
    dim: int,
    sparse: SparseEncoder,
) -> dict[str, float]:
    """Upsert in batches; only the upsert calls count as load time, not making the data."""
    now = datetime.now(UTC)
    generate_s = load_s = 0.0
    for start in range(0, chunks, LOAD_BATCH):
        end = min(start + LOAD_BATCH, chunks)
        started = time.perf_counter()
        points = list(_points(rng, corpus, documents, start, end, dim, sparse, now))
        generate_s += time.perf_counter() - started
        load_s += _timed(partial(store.upsert, points))
    return {"generate_s": generate_s, "load_s": load_s, "load_points_per_s": _rate(chunks, load_s)}


def _points(
    rng: np.random.Generator,
    corpus: _Corpus,
    documents: list[Document],
    start: int,
    end: int,
    dim: int,
    sparse: SparseEncoder,
    now: datetime,
) -> Iterator[StoredChunk]:
    texts = corpus.texts(rng, end - start, 80, 160)
    dense = _unit_vectors(rng, end - start, dim)
    for i, text, vector in zip(range(start, end), texts, dense, strict=True):
        doc = documents[i // CHUNKS_PER_DOC]
        ordinal = i % CHUNKS_PER_DOC
        chunk = Chunk(
            chunk_id=make_chunk_id(doc.doc_id, doc.version_sha256, ordinal),
            doc_id=doc.doc_id,
            version=doc.version_sha256,
            text=text,
            page_start=ordinal // 3 + 1,
            page_end=ordinal // 3 + 1,
            char_start=0,
            char_end=len(text),
            meta={"ordinal": ordinal, "section": "", "categories": ["NarrativeText"]},
        )
        title = f"Document {doc.source}"
        yield StoredChunk(chunk, doc, title, vector.tolist(), sparse.encode_document(text), now)


def _unit_vectors(rng: np.random.Generator, n: int, dim: int) -> npt.NDArray[np.float32]:
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _register(registry: Registry, documents: list[Document], chunks: int) -> None:
    """Active versions, so the Searcher's drop of inactive hits keeps them (as in real use)."""
    for d, doc in enumerate(documents):
        count = min(CHUNKS_PER_DOC, chunks - d * CHUNKS_PER_DOC)
        title = f"Document {doc.source}"
        registry.begin_version(doc.doc_id, doc.source, doc.version_sha256, title, None)
        registry.activate(doc.doc_id, doc.version_sha256, count, doc.acl, title)


def _optimize(store: EdgeStore) -> dict[str, Any]:
    """Index as ingest does at the end of a run; unindexed segments are searched by brute force."""
    figures: dict[str, Any] = {"optimize_s": _timed(store.optimize)}
    shard = getattr(store, "_shard", None)
    info = getattr(shard, "info", None)
    if info is not None:
        with store._lock:
            details = info()
        figures["segments"] = details.segments_count
        figures["indexed_vectors"] = details.indexed_vectors_count
    return figures


def _time_queries(
    searcher: Searcher,
    store: EdgeStore,
    rng: np.random.Generator,
    corpus: _Corpus,
    groups: list[str],
    queries: int,
) -> dict[str, Any]:
    texts = corpus.texts(rng, WARMUP_QUERIES + queries, 3, 7)
    principals = [
        Principal(f"user-{i}", _some_groups(rng, groups, 2, 3)) for i in range(len(texts))
    ]
    hits: list[int] = []

    def end_to_end(i: int) -> None:
        hits.append(len(searcher.search(texts[i], principals[i], k=SEARCH_K)))

    # The store alone: the same queries with the vectors made beforehand, asked as Searcher asks.
    dense = searcher.embedder.embed(texts)
    sparse = [searcher.sparse.encode_query(t) for t in texts]
    settings = searcher.settings
    limit = SEARCH_K + OVERFETCH

    def store_only(i: int) -> None:
        store.hybrid_search(
            dense[i].tolist(), sparse[i], principals[i].groups, limit=limit,
            prefetch=max(settings.prefetch, limit), fusion=settings.fusion,
        )

    figures = _latencies("e2e", end_to_end, len(texts))
    figures["hits_mean"] = float(np.mean(hits[WARMUP_QUERIES:])) if queries else 0.0
    figures |= _latencies("store", store_only, len(texts))
    return figures


def _latencies(name: str, fn: Callable[[int], None], n: int) -> dict[str, float]:
    """Milliseconds per call after warm-up: caches and lazy allocations settle in the first few."""
    for i in range(min(WARMUP_QUERIES, n)):
        fn(i)
    ms = np.array([_timed(partial(fn, i)) * 1000 for i in range(WARMUP_QUERIES, n)])
    if ms.size == 0:
        return {}
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {
        f"{name}_p50_ms": float(p50),
        f"{name}_p95_ms": float(p95),
        f"{name}_p99_ms": float(p99),
        f"{name}_mean_ms": float(ms.mean()),
    }


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started

