"""Benchmarks behind ``enclave bench``: figures to read, not tests to pass.

``bench_ingest`` runs the real pipeline over real files in a throwaway data dir, once per
profile (``previous``: the defaults before int8 embedding, the pdfium text path and
parsing ahead; ``default``: today's; or an embedding mode over today's defaults), so a
faster path is reported as a ratio measured in the same run.
``bench_search`` times the real search path over a large synthetic store: embedding
100k real chunks would take hours on a small CPU, and latency depends on the store's
size and the access filter's selectivity, not on what the text says.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
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
from core.errors import StoreError
from core.ports import SparseEncoder, StoredChunk
from core.registry import Registry
from core.settings import EmbeddingSettings, QdrantSettings, Settings
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
BENCH_COLLECTION = "bench"
# Seconds a worker spends between two documents' writes, parsing and embedding the next:
# 50 chunks at the int8 embedder's ~40 passages/s here, plus parsing.
WRITE_PAUSE_S = 2.0
SERVE_USERS = 20
_ENCLAVE = Path(sys.executable).parent / "enclave"
# The embedding modes a benchmark can compare: every real one (fake is for unit tests).
EMBEDDINGS = tuple(
    m for m in get_args(EmbeddingSettings.model_fields["mode"].annotation) if m != "fake"
)

# -- ingest ------------------------------------------------------------------------------------

# Settings sections laid over today's defaults. `previous` is what a default install ran
# before issue 22: fp32 PyTorch embedding, pdfminer's text, one document at a time.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "previous": {"embedding": {"mode": "sentence-transformers"},
                 "ingest": {"pdf_text": "pdfminer", "parse_ahead": 0}},
    "default": {},
    **{mode: {"embedding": {"mode": mode}} for mode in EMBEDDINGS},
}


def bench_ingest(
    paths: Sequence[Path], profiles: Sequence[str] = ("previous", "default")
) -> dict[str, Any]:
    """Ingest ``paths`` once per profile (:data:`PROFILES`), each into a fresh data dir:
    seconds and rates per stage, and each run's rates as a ratio of the first run's (same
    machine, same files, one after the other). Stages overlap when documents are parsed
    ahead: their seconds then add up to more than the total, which is wall time.

    The ratios are speed-ups, the first run's seconds over this one's: every profile reads
    the same files (the same pages/s ratio), while the chunks they make differ in number
    (a table kept in rows is fewer, longer chunks), so a ratio of chunks/s would count a
    different amount of work as a different speed."""
    from ingest.parse import quiet_parsers

    quiet_parsers()
    runs = [_ingest_once(paths, profile) for profile in profiles]
    first = runs[0]
    for run in runs:
        run["ratio_vs_first"] = {
            stage: round(_ratio(first[f"{stage}_s"], run[f"{stage}_s"]), 2)
            for stage in ("parse", "chunk", "embed", "store", "total")
        }
    return {"runs": runs}


def _ingest_once(paths: Sequence[Path], profile: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="enclave-bench-") as tmp:
        overrides: dict[str, Any] = PROFILES[profile]
        settings = Settings(data_dir=Path(tmp), **overrides)
        container = Container(settings)
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
        "profile": profile,
        "embedding": settings.embedding.mode,
        "pdf_text": settings.ingest.pdf_text,
        "parse_ahead": settings.ingest.parse_ahead,
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


def bench_search(
    chunks: int = 100_000, queries: int = 200, serve: bool = False,
    write_pause_s: float = WRITE_PAUSE_S,
) -> dict[str, Any]:
    """Latency of access-filtered hybrid search over ``chunks`` synthetic points: in this
    process (held open, then opened per search), then, with ``serve``, through a real
    `enclave serve` on the same data while nobody writes and while a worker-like process
    writes a document every ``write_pause_s`` seconds."""
    rng = np.random.default_rng(SEED)
    corpus = _Corpus.make(rng)
    groups = [f"group-{i:02d}" for i in range(GROUP_POOL)]
    with tempfile.TemporaryDirectory(prefix="enclave-bench-") as tmp:
        root = Path(tmp)
        # The data dir is also serve's: its database holds the documents' registry rows and
        # the users serve authenticates, its store is the one loaded here.
        container = Container(Settings(data_dir=root, qdrant=QdrantSettings(collection=BENCH_COLLECTION)))
        store = EdgeStore(root / "qdrant-edge" / BENCH_COLLECTION)
        registry = container.registry
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
            # Opened per search, as serve did before it held the store open and as
            # ENCLAVE_QDRANT__HOLD_OPEN=false still does: that opening is timed too.
            store.close()
            shared = EdgeStore(store.path, hold_open=False)
            shared.ensure_collection(embedder.dim)
            taking_turns = Searcher(container.settings.search, shared, embedder, sparse, registry)
            reopened = _time_queries(taking_turns, shared, rng, corpus, groups, few)
            figures |= {f"reopened_{k}": v for k, v in reopened.items() if k.startswith("e2e_p")}
            shared.close()
            if serve:
                keys = _users(container, rng, groups)
                figures |= _beside_worker(root, keys, rng, corpus, documents, queries, few,
                                          embedder.dim, write_pause_s)
            return figures
        finally:
            store.close()
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
    return _summary(name, [_timed(partial(fn, i)) * 1000 for i in range(WARMUP_QUERIES, n)])


def _summary(name: str, values: Sequence[float]) -> dict[str, float]:
    ms = np.array(values, dtype=np.float64)
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



# -- search through `enclave serve` beside a worker ---------------------------------------------


def _users(container: Container, rng: np.random.Generator, groups: list[str]) -> list[str]:
    """API keys of employees in 2 to 3 groups each, like the principals searched above."""
    return [
        container.users.add(f"bench-user-{i:02d}", _some_groups(rng, groups, 2, 3), ("employee",))
        for i in range(SERVE_USERS)
    ]


def _beside_worker(
    root: Path,
    keys: list[str],
    rng: np.random.Generator,
    corpus: _Corpus,
    documents: list[Document],
    queries: int,
    few: int,
    dim: int,
    write_pause_s: float,
) -> dict[str, Any]:
    """The deployment the README describes for one machine: `enclave serve` (its default
    sharing, yield) with a worker beside it, idle and while the worker writes; then serve
    opening the store per search (ENCLAVE_QDRANT__HOLD_OPEN=false), as it used to."""
    figures: dict[str, Any] = {"write_pause_s": write_pause_s}
    path = root / "qdrant-edge" / BENCH_COLLECTION
    with _Server(root) as server:
        idle = server.time(keys, corpus.texts(rng, WARMUP_QUERIES + queries, 3, 7))
        figures |= {f"serve_idle_{k}": v for k, v in idle.items()}
        # Each write replaces one document's 50 chunks; the last document may be shorter.
        whole = documents[: max(1, len(documents) - 1)]
        with _Writer(path, whole, dim, write_pause_s) as writer:
            writing = server.time(keys, corpus.texts(rng, WARMUP_QUERIES + queries, 3, 7))
        figures |= {f"serve_writing_{k}": v for k, v in writing.items()}
        figures |= writer.figures
    with _Server(root, hold_open="false") as server:
        reopened = server.time(keys, corpus.texts(rng, WARMUP_QUERIES + few, 3, 7))
        figures |= {f"serve_per_operation_{k}": v for k, v in reopened.items()}
    return figures


class _Server:
    """A real `enclave serve` on the bench's data dir, answering in extractive mode (no
    model): serve's search is timed by serve itself (the answer's ``retrieve`` timing),
    and the whole request by the client."""

    def __init__(self, root: Path, hold_open: str | None = None) -> None:
        self.root = root
        self.hold_open = hold_open

    def __enter__(self) -> _Server:
        import httpx

        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k != "ENCLAVE_QDRANT__HOLD_OPEN"}
        env |= {
            "ENCLAVE_DATA_DIR": str(self.root),
            "ENCLAVE_QDRANT__COLLECTION": BENCH_COLLECTION,
            "ENCLAVE_ANSWER__MODE": "extractive",
            # One passage to answer from: what follows the search in an answer (verifying
            # the passages' sentences) then costs little beside it. The store's work is
            # the same (its prefetch, 50, does not depend on k).
            "ENCLAVE_ANSWER__PASSAGES": "1",
            "ENCLAVE_SERVE__RATE_PER_MINUTE": "1000000",
            "ENCLAVE_SERVE__HOST": "127.0.0.1",
            "ENCLAVE_SERVE__PORT": str(port),
        }
        if self.hold_open is not None:
            env["ENCLAVE_QDRANT__HOLD_OPEN"] = self.hold_open
        self.log_path = self.root / f"serve-{port}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(_ENCLAVE), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        deadline = time.monotonic() + 300
        while True:
            try:
                if self.client.get("/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("enclave serve did not start:\n"
                                   + self.log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def time(self, keys: list[str], texts: list[str]) -> dict[str, Any]:
        """Chats one after another, each user in turn; the first few warm up, untimed.
        Every failed request is counted, warm-up included."""
        searches: list[float] = []
        requests: list[float] = []
        errors: list[str] = []
        for i, text in enumerate(texts):
            started = time.perf_counter()
            reply = self.client.post("/v1/chat", json={"question": text},
                                     headers={"Authorization": f"Bearer {keys[i % len(keys)]}"})
            elapsed_ms = (time.perf_counter() - started) * 1000
            if reply.status_code != 200:
                errors.append(f"{reply.status_code} {reply.text[:300]}")
                continue
            if i >= WARMUP_QUERIES:
                requests.append(elapsed_ms)
                searches.append(float(reply.json()["timings"]["retrieve"]) * 1000)
        figures: dict[str, Any] = _summary("search", searches) | _summary("request", requests)
        figures["errors"] = len(errors)
        if errors:
            figures["first_error"] = errors[0]
        return figures


class _Writer:
    """A process that writes as a worker does: a document's points in one per-operation
    session through the same EdgeStore code, then a pause as long as parsing and
    embedding the next document takes, again and again."""

    def __init__(self, path: Path, documents: list[Document], dim: int, pause_s: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.stop = ctx.Event()
        self.wrote = ctx.Event()
        self.results: Any = ctx.Queue()
        self.proc = ctx.Process(
            target=_write_documents,
            args=(str(path), documents, dim, pause_s, self.stop, self.wrote, self.results),
            daemon=True,
        )
        self.figures: dict[str, Any] = {}

    def __enter__(self) -> _Writer:
        self.proc.start()
        # Timing starts once the writer is in its stride: its first session is behind it.
        deadline = time.monotonic() + 300
        while not self.wrote.wait(0.5):
            if not self.proc.is_alive() or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("the writer process wrote nothing (see its error above)")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        try:
            self.figures = self.results.get(timeout=300)
        finally:
            self.proc.join(60)
            if self.proc.is_alive():
                self.proc.kill()


class _TimedStore(EdgeStore):
    """Notes how long each open waited for the store: the yielding holder's share."""

    def __init__(self, path: Path, lock_wait_s: float) -> None:
        super().__init__(path, lock_wait_s, hold_open=False)
        self.waits: list[float] = []

    def _open(self, deadline: float | None = None) -> None:
        started = time.perf_counter()
        if self._dir_lock.acquire(self.lock_wait_s):  # held now: the real open finds it so
            self.waits.append(time.perf_counter() - started)
        super()._open(deadline)


def _write_documents(
    path: str, documents: list[Document], dim: int, pause_s: float, stop: Any, wrote: Any,
    results: Any,
) -> None:
    from retrieval.sparse import Bm25SparseEncoder

    rng = np.random.default_rng(SEED + 1)
    corpus = _Corpus.make(rng)
    sparse = Bm25SparseEncoder()
    store = _TimedStore(Path(path), lock_wait_s=60)
    sessions: list[float] = []
    errors: list[str] = []
    now = datetime.now(UTC)
    n = 0
    try:
        store.ensure_collection(dim)
        store.waits.clear()
        while not stop.is_set():
            d = n % len(documents)
            start = d * CHUNKS_PER_DOC
            points = list(_points(rng, corpus, documents, start, start + CHUNKS_PER_DOC, dim,
                                  sparse, now))
            started = time.perf_counter()
            try:
                with store.session():
                    store.upsert(points)
                    store.count(documents[d].doc_id, documents[d].version_sha256)
                sessions.append((time.perf_counter() - started) * 1000)
            except StoreError as exc:
                errors.append(str(exc))
            n += 1
            wrote.set()
            stop.wait(pause_s)
    finally:
        store.close()
        figures: dict[str, Any] = {"writer_documents": n, "writer_errors": len(errors)}
        figures |= {f"writer_{k}": v for k, v in
                    _summary("wait", [w * 1000 for w in store.waits]).items()}
        figures |= {f"writer_{k}": v for k, v in _summary("session", sessions).items()}
        if store.waits:
            figures["writer_wait_max_ms"] = max(store.waits) * 1000
        if errors:
            figures["writer_first_error"] = errors[0]
        results.put(figures)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
