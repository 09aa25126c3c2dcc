"""``enclave eval retrieval``: search quality on a BEIR-format benchmark, through the real pipeline.

Every corpus document is written as one Markdown file (``# title`` then the text) and
ingested by the same :class:`ingest.pipeline.Ingestor` that serves users, into a fresh
data dir: parsed, chunked, embedded and stored. Each query then runs through the same
:class:`retrieval.search.Searcher`, with the candidate depth users' searches get; a
document ranks where its best chunk ranks.

Printed: nDCG@10, Recall@100 and MRR@10 per mode, ingest time and rates, and the query
latency (p50, p95).
"""

from __future__ import annotations

import csv
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.container import Container
from core.errors import InputError
from core.settings import Settings
from core.types import Principal
from eval.metrics import evaluate
from retrieval.search import OVERFETCH

MODES = ("sparse", "dense", "hybrid")
# Hybrid under a named fusion, whatever the settings say: compared on one ingest.
FUSED = ("hybrid-rrf", "hybrid-dbsf", "hybrid-minmax")
ASKER = Principal("eval")
DEPTH = 100  # documents ranked per query (Recall@100)
# Chunks fetched per query: documents hold several, so more than DEPTH chunks are needed.
CHUNK_DEPTH = 300


@dataclass(frozen=True, slots=True)
class Benchmark:
    corpus: dict[str, tuple[str, str]]  # doc id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load(corpus: Path, queries: Path, qrels: Path, limit: int | None = None) -> Benchmark:
    """Read BEIR files; ``limit``: only the first N judged queries (and the whole corpus)."""
    docs = {str(d["_id"]): (str(d.get("title") or ""), str(d.get("text") or ""))
            for d in _jsonl(corpus)}
    asked = {str(q["_id"]): str(q["text"]) for q in _jsonl(queries)}
    judged: dict[str, dict[str, int]] = {}
    try:
        with qrels.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                judged.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{qrels}: not a BEIR qrels file (query-id, corpus-id, score): {exc}") from exc
    ids = [q for q in asked if q in judged][:limit] if limit else [q for q in asked if q in judged]
    if not ids:
        raise InputError("no query has relevance judgments")
    return Benchmark(docs, {q: asked[q] for q in ids}, {q: judged[q] for q in ids})


def _jsonl(path: Path) -> Iterable[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as handle:
            for n, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError as exc:
                        raise InputError(f"{path}:{n}: not JSON: {exc}") from exc
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc


def write_corpus(bench: Benchmark, folder: Path) -> dict[str, str]:
    """One Markdown file per document; returns source path -> doc id."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = {}
    for doc_id, (title, text) in bench.corpus.items():
        path = folder / f"{_safe(doc_id)}.md"
        path.write_text(f"# {title}\n\n{text}\n" if title else f"{text}\n", encoding="utf-8")
        sources[str(path.resolve())] = doc_id
    return sources


def _safe(doc_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in doc_id)


def eval_retrieval(
    bench: Benchmark,
    modes: Sequence[str] = MODES,
    overrides: dict[str, Any] | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    anchors: bool = False,
    keep: Path | None = None,
    write: Callable[[Benchmark, Path], dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Ingest, then rank every query by each mode; ``anchors``: also BM25 (bm25s) and plain
    cosine over whole documents with the same model (eval.anchors), in the same run.

    ``keep``: a folder for the corpus files and the data dir, kept for the next run, whose
    ingest then finds every document unchanged (for tuning search; not for chunking).
    ``write``: how the corpus becomes files (source -> doc id); Markdown by default
    (`enclave bench ocr --retrieval` writes scans).
    """
    unknown = set(modes) - set(MODES) - set(FUSED)
    if unknown:
        raise InputError(f"unknown mode(s) {', '.join(sorted(unknown))}: "
                         f"{', '.join(MODES + FUSED)}")
    with _workdir(keep) as root:
        sources = (write or write_corpus)(bench, root / "corpus")
        # ENCLAVE_* variables apply, as for every command: evaluate the settings you run.
        container = Container(Settings(data_dir=root / "data", **(overrides or {})))
        try:
            container.embedder.embed(["warm up"])
            started = time.perf_counter()
            report = container.ingestor.ingest([root / "corpus"])
            ingest_s = time.perf_counter() - started
            if report.failed:
                raise InputError(f"{len(report.failed)} corpus documents failed to ingest: "
                                 f"{report.failed[0].reason}")
            times = report.times
            result: dict[str, Any] = {
                "documents": len(bench.corpus), "queries": len(bench.queries),
                "chunks": container.store.count(),
                "reused": report.count("unchanged"),
                "ingest": {
                    "seconds": round(ingest_s, 1),
                    "docs_per_s": round(len(bench.corpus) / ingest_s, 1),
                    "parse_s": round(times.parse, 1), "chunk_s": round(times.chunk, 1),
                    "embed_s": round(times.embed, 1), "store_s": round(times.store, 1),
                },
                "modes": {},
            }
            for mode in modes:
                result["modes"][mode] = _run_mode(container, bench, sources, mode, on_progress)
            if anchors:
                from eval.anchors import bm25_anchor, cosine_anchor

                result["anchors"] = {"bm25s": bm25_anchor(bench),
                                     "cosine": cosine_anchor(bench, container.embedder)}
            result["settings"] = {
                "embedding_model": container.embedder.name,
                "chunk_max_tokens": container.settings.chunking.max_tokens,
                "fusion": container.settings.search.fusion,
                "prefetch": container.settings.search.prefetch,
                "dense_weight": container.settings.search.dense_weight,
            }
        finally:
            container.close()
    return result


@contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="enclave-eval-retrieval-") as tmp:
        yield Path(tmp)


def _run_mode(container: Container, bench: Benchmark, sources: dict[str, str], mode: str,
              on_progress: Callable[[str, int, int], None] | None) -> dict[str, Any]:
    if mode in FUSED:
        search = container.searcher.settings
        configured, search.fusion = search.fusion, mode.split("-", 1)[1]  # type: ignore[assignment]
        try:
            return _run_mode(container, bench, sources, "hybrid", on_progress)
        finally:
            search.fusion = configured
    runs: dict[str, list[str]] = {}
    latencies = []
    # Score fusion (dbsf, minmax) normalises over the candidates fetched, and the searcher
    # fetches more when asked for more: ranking 300 deep is not what a user asking for 5
    # sees. So the top comes from a call as deep as users' calls (its own prefetch), and
    # only the ranks below it from a deep call, for Recall@100.
    served = max(1, container.searcher.settings.prefetch - OVERFETCH)
    for n, (qid, text) in enumerate(bench.queries.items(), 1):
        started = time.perf_counter()
        top = container.searcher.ranked(text, ASKER, served, mode)
        latencies.append(time.perf_counter() - started)
        deep = container.searcher.ranked(text, ASKER, CHUNK_DEPTH, mode)
        ranked = [sources.get(str(h.chunk.meta.get("source")), "") for h in (*top, *deep)]
        runs[qid] = list(dict.fromkeys(d for d in ranked if d))[:DEPTH]
        if on_progress:
            on_progress(mode, n, len(bench.queries))
    return {**rounded(evaluate(runs, bench.qrels)), **latency(latencies)}


def latency(seconds: Sequence[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {"query_p50_ms": round(statistics.median(ordered) * 1000, 2),
            "query_p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2)}


def rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {k: (round(v, 4) if k != "queries" else int(v)) for k, v in metrics.items()}
