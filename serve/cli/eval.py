"""``enclave eval retrieval`` and ``enclave eval report``: search quality on BEIR benchmarks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from serve.cli.common import out, print_figures, progress, run_cli

SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "scifact"
REPORT = Path(__file__).resolve().parents[2] / "eval" / "README.md"

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


def eval_answers(
    clapnq: Annotated[Path, typer.Option("--clapnq", help="The ClapNQ folder (answerable/unanswerable).")],
    limit: Annotated[
        int | None, typer.Option(help="Ask only this many questions, half of each kind.", min=2)
    ] = None,
    sweep: Annotated[
        bool, typer.Option("--sweep", help="Only sweep the relevance threshold (no answering).")
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write all figures here.")] = None,
) -> None:
    """Answered %, citation precision, refusals of unanswerable questions, supported %, latency."""
    import json

    from eval.answers import eval_answers as run_eval
    from eval.answers import relevance_sweep, support_sweep

    def work() -> dict[str, Any]:
        if sweep:
            return {"relevance": relevance_sweep(clapnq), "support": support_sweep(clapnq)}
        with progress(True) as bar:
            task = bar.add_task("asking", total=None) if bar else None

            def tick(done: int, total: int) -> None:
                if bar is not None:
                    bar.update(task, completed=done, total=total)

            return run_eval(clapnq, limit=limit, progress=tick)

    result = run_cli(work)
    if json_out:
        json_out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    if sweep:
        for row in result["relevance"]["thresholds"]:
            out.print(
                f"min_relevance {row['min_relevance']:.2f}  "
                f"answerable kept {row['answerable_kept_pct']:5.1f}%"
                f"  unanswerable refused {row['unanswerable_refused_pct']:5.1f}%"
            )
        for row in result["support"]["thresholds"]:
            out.print(
                f"min_support {row['min_support']:.2f}  reference sentences supported "
                f"{row['reference_supported_pct']:5.1f}%  against a wrong passage "
                f"{row['wrong_passage_supported_pct']:5.1f}%"
            )
        return
    print_figures({k: v for k, v in result.items() if k != "questions"}, False)
