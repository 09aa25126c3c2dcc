"""``enclave eval retrieval`` and ``enclave eval report``: search quality on BEIR benchmarks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from serve.cli_common import out, progress, run_cli

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
REPORT = Path(__file__).resolve().parents[1] / "eval" / "README.md"

CorpusOpt = Annotated[Path, typer.Option("--corpus", help="BEIR corpus.jsonl (_id, title, text).")]
QueriesOpt = Annotated[Path, typer.Option("--queries", help="BEIR queries.jsonl (_id, text).")]
QrelsOpt = Annotated[Path, typer.Option("--qrels", help="BEIR qrels TSV (query-id, corpus-id, score).")]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N judged queries.")]
JsonOut = Annotated[Path | None, typer.Option("--json", help="Also write all figures here.")]


def retrieval(
    corpus: CorpusOpt = SCIFACT / "corpus.jsonl",
    queries: QueriesOpt = SCIFACT / "queries.jsonl",
    qrels: QrelsOpt = SCIFACT / "qrels" / "train.tsv",
    mode: Annotated[list[str] | None, typer.Option(
        "--mode", help="hybrid, dense or sparse (repeatable; default all three); hybrid-rrf, "
        "hybrid-dbsf, hybrid-minmax: hybrid under that fusion.")] = None,
    limit: LimitOpt = None,
    keep: Annotated[Path | None, typer.Option(
        "--keep", help="Keep the ingested corpus here and reuse it next time (same chunking).")]
    = None,
    json_out: JsonOut = None,
) -> None:
    """Ingest a BEIR corpus into a fresh collection; nDCG@10, Recall@100, MRR@10 per mode."""
    from eval.retrieval import MODES

    result = _evaluate(corpus, queries, qrels, limit, json_out, modes=mode or MODES, keep=keep)
    ingest = result["ingest"]
    out.print(f"{result['documents']} documents, {result['chunks']} chunks, "
              f"{result['queries']} queries; ingest {ingest['seconds']} s "
              f"({ingest['docs_per_s']} docs/s; embed {ingest['embed_s']} s; "
              f"{result['reused']} reused)")
    for name, m in result["modes"].items():
        out.print(f"{name:<11} nDCG@10 {m['ndcg@10']:.4f}  Recall@100 {m['recall@100']:.4f}  "
                  f"MRR@10 {m['mrr@10']:.4f}  query p50 {m['query_p50_ms']} ms, "
                  f"p95 {m['query_p95_ms']} ms")


def report(
    corpus: CorpusOpt = SCIFACT / "corpus.jsonl",
    queries: QueriesOpt = SCIFACT / "queries.jsonl",
    qrels: QrelsOpt = SCIFACT / "qrels" / "train.tsv",
    limit: LimitOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="The report to (re)write.")]
    = REPORT,
    json_out: JsonOut = None,
) -> None:
    """Every mode and both anchors (bm25s BM25, plain cosine) in one run -> eval/README.md."""
    from core.settings import Settings
    from eval.report import render
    from eval.retrieval import FUSED, MODES

    # The configured fusion is the hybrid row; the others are compared on the same ingest.
    configured = f"hybrid-{Settings().search.fusion}"
    modes = MODES + tuple(m for m in FUSED if m != configured)
    result = _evaluate(corpus, queries, qrels, limit, json_out, modes=modes, anchors=True)
    shown = corpus.parent.name if corpus.parent != SCIFACT else "SciFact (train claims)"
    argv = "enclave eval report" + (f" --limit {limit}" if limit else "")
    output.write_text(render(result, argv, shown), encoding="utf-8")
    out.print(output.read_text(encoding="utf-8"))


def _evaluate(corpus: Path, queries: Path, qrels: Path, limit: int | None,
              json_out: Path | None, **options: Any) -> dict[str, Any]:
    """Load the benchmark, run ``eval_retrieval`` with a progress bar, save the figures."""
    from eval.retrieval import eval_retrieval, load

    def work() -> dict[str, Any]:
        bench = load(corpus, queries, qrels, limit)
        with progress(True) as bar:
            task = bar.add_task("ingesting", total=None) if bar else None

            def tick(name: str, done: int, total: int) -> None:
                if bar is not None:
                    bar.update(task, description=f"queries ({name})", completed=done, total=total)

            return eval_retrieval(bench, on_progress=tick, **options)

    result = run_cli(work)
    if json_out:
        json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result
