"""``enclave bench``: benchmarks that print figures, each against a baseline of the same run (not tests)."""


from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serve.cli.common import JsonOpt, err, out, print_figures, run_cli

SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "scifact"


def bench_ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.")],
    profile: Annotated[str, typer.Option(
        "--profile", "--embedding",
        help="Profiles to compare, comma-separated; the first is the baseline. previous: the "
             "defaults before int8 embedding, the pdfium text path and parsing ahead; "
             "default: today's; or an embedding mode over today's defaults.")]
    = "previous,default",
    as_json: JsonOpt = False,
) -> None:
    """Ingest into a fresh, temporary data dir per profile: pages/s and chunks/s per
    stage, and each profile's rates as a ratio of the first's, measured in the same run."""
    from eval.bench import PROFILES
    from eval.bench import bench_ingest as run_bench

    names = [m.strip() for m in profile.split(",") if m.strip()]
    unknown = set(names) - set(PROFILES)
    if not names or unknown:
        raise typer.BadParameter(
            f"unknown profile(s) {sorted(unknown)}: {', '.join(PROFILES)}",
            param_hint="--profile")
    result = run_cli(lambda: run_bench(paths, names))
    if as_json:
        out.print_json(data=result)
        return
    stages = ("parse", "chunk", "embed", "store")
    first = result["runs"][0]["profile"]
    for run in result["runs"]:
        out.print(f"{run['profile']} (embedding {run['embedding']}, pdf text {run['pdf_text']}, "
                  f"parse ahead {run['parse_ahead']}; {run['model']}): {run['files']} files, "
                  f"{run['pages']} pages, {run['chunks']} chunks, {run['failed']} failed, "
                  f"{run['total_s']:.1f} s, {run['pages_per_s']:.2f} pages/s "
                  f"(model load {run['model_load_s']:.1f} s)")
        for stage, pages, chunks in [
            *((s, f"{s}_pages_per_s", f"{s}_chunks_per_s") for s in stages),
            ("total", "pages_per_s", "total_chunks_per_s"),
        ]:
            out.print(f"  {stage:<6} {run[pages]:>8.1f} pages/s {run[chunks]:>8.1f} chunks/s  "
                      f"{run['ratio_vs_first'][stage]:.2f}x as fast as {first}")


def bench_jobs(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.")],
    workers: Annotated[str, typer.Option(help="Worker process counts to compare.")] = "1,2",
    as_json: JsonOpt = False,
) -> None:
    """Pages/s with N worker processes, and submit-to-searchable seconds for one small file."""
    from eval.bench_jobs import bench_jobs as run_bench

    counts = [int(n) for n in workers.split(",") if n.strip()]
    result = run_cli(lambda: run_bench([p.absolute() for p in paths], counts))
    if as_json:
        out.print_json(data=result)
        return
    for run in result["runs"]:
        out.print(
            f"{run['workers']} worker(s): {run['pages']} pages in {run['seconds']} s = "
            f"{run['pages_per_s']} pages/s ({run['speedup_vs_first']}x), "
            f"{run['files_done']} files done, {run['files_failed']} failed; "
            f"one small file submit->searchable {run['submit_to_searchable_s']} s"
        )


def bench_audit(
    postgres: Annotated[str | None, typer.Option(
        help="A PostgreSQL server URL (a scratch database is made there); default SQLite.")]
    = None,
    records: Annotated[int, typer.Option(help="Records to append.")] = 2000,
    writers: Annotated[int, typer.Option(help="Processes appending at once.")] = 4,
    as_json: JsonOpt = False,
) -> None:
    """Audit appends/s against plain inserts of the same rows, unsealed and sealed (p50/p95
    of both in the same run), and verify's records/s."""
    from eval.bench_audit import bench_audit as run_bench

    result = run_cli(lambda: run_bench(postgres, records, writers))
    if as_json:
        out.print_json(data=result)
        return
    out.print(
        f"{result['database']}: {result['appends_per_s']} appends/s "
        f"({result['append_vs_plain_insert']}x plain inserts at {result['plain_inserts_per_s']}/s), "
        f"p50 {result['append_p50_ms']} ms, p95 {result['append_p95_ms']} ms unsealed; "
        f"sealed {result['sealed_appends_per_s']} appends/s, p50 "
        f"{result['sealed_append_p50_ms']} ms ({result['sealed_vs_unsealed_p50']}x), p95 "
        f"{result['sealed_append_p95_ms']} ms ({result['sealed_vs_unsealed_p95']}x), checkpoint "
        f"every {result['checkpoint_every']} records; "
        f"{result['writers']} writers {result['parallel_appends_per_s']} sealed appends/s; "
        f"verify {result['verify_records_per_s']} records/s sealed "
        f"({result['verify_unsealed_records_per_s']} unsealed) over {result['verify_records']} "
        f"(intact: {result['verify_intact']})"
    )


def bench_chat(
    key: Annotated[str, typer.Option(help="An API key of the server's (enclave users add).")],
    url: Annotated[str, typer.Option(help="The running server.")] = "http://127.0.0.1:8000",
    concurrency: Annotated[str, typer.Option(help="Concurrent clients, e.g. 1,2,8.")] = "1,2,8",
    requests: Annotated[int, typer.Option(help="Chats per run.")] = 20,
    question: Annotated[str, typer.Option(help="What every chat asks.")]
    = "How many days of paid leave do employees get?",
    stream: Annotated[bool, typer.Option(
        "--stream", help="Streamed chats: time to the first raw token (a server with "
        "ENCLAVE_SERVE__STREAM_RAW_TOKENS=true), to the first verified sentence, and to the "
        "whole answer.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Fire concurrent chats at a running server: p50/p95, answers/s, errors by status."""
    from eval.bench_chat import bench_chat as run_bench
    from eval.bench_chat import bench_stream

    counts = [int(n) for n in concurrency.split(",") if n.strip()]
    result = (bench_stream if stream else run_bench)(url, key, question, counts, requests)
    if as_json:
        out.print_json(data=result)
        return
    for run in result["runs"]:
        if stream:
            parts = [f"{name.replace('_', ' ')} p50 {run[name]['p50_s']} s / p95 "
                     f"{run[name]['p95_s']} s"
                     for name in ("first_raw_token", "first_verified_sentence", "whole_answer")]
            out.print(f"concurrency {run['concurrency']}: {run['answered']}/{run['requests']} "
                      f"answered; " + "; ".join(parts) + f"; statuses {run['statuses']}")
            continue
        out.print(
            f"concurrency {run['concurrency']}: {run['answered']}/{run['requests']} answered in "
            f"{run['seconds']} s ({run['answers_per_s']}/s, {run['throughput_vs_first']}x), "
            f"p50 {run['p50_s']} s, "
            f"p95 {run['p95_s']} s; statuses {run['statuses']}; errors {run['errors']}; "
            f"429/503 without Retry-After {run['rejected_without_retry_after']}"
        )


def bench_search(
    chunks: Annotated[int, typer.Option(help="Chunks in the store.")] = 100_000,
    queries: Annotated[int, typer.Option(help="Queries to time.")] = 200,
    serve: Annotated[bool, typer.Option(
        "--serve/--no-serve", help="Also time searches through a real `enclave serve` on the "
        "same data, idle and while a worker-like process writes beside it.")] = True,
    write_pause: Annotated[float, typer.Option(
        min=0, help="Seconds that writer pauses between documents (parsing and embedding "
        "the next).")] = 2.0,
    as_json: JsonOpt = False,
) -> None:
    """p50/p95 latency of hybrid search with the access filter in the embedded store: held
    open, opened per search, and through `enclave serve` beside a writing worker."""
    from eval.bench import bench_search as run_bench

    result = run_cli(lambda: run_bench(chunks, queries, serve, write_pause))
    print_figures(result, as_json)


# SciFact's files, for the benchmarks that rank its claims (--retrieval).
CorpusOpt = Annotated[Path, typer.Option(help="SciFact's corpus.jsonl.")]
QueriesOpt = Annotated[Path, typer.Option(help="SciFact's queries.jsonl (--retrieval).")]
QrelsOpt = Annotated[Path, typer.Option(help="SciFact's qrels TSV (--retrieval).")]


def bench_ocr(
    pages: Annotated[int, typer.Option(
        help="Pages per condition (SciFact abstracts, about one page each).", min=1)] = 30,
    retrieval: Annotated[int, typer.Option(
        "--retrieval", min=0, help="Also ingest this many SciFact abstracts as image-only PDFs "
        "and as text, and compare nDCG@10 (slow: OCR of every abstract); 0: skip.")] = 0,
    corpus: CorpusOpt = SCIFACT / "corpus.jsonl",
    queries: QueriesOpt = SCIFACT / "queries.jsonl",
    qrels: QrelsOpt = SCIFACT / "qrels" / "train.tsv",
    as_json: JsonOpt = False,
) -> None:
    """Character error rate and pages/s of OCR on scans of known text (300 dpi clean, 200
    dpi noisy and skewed, JPEG quality 60), parsed as image-only PDFs by the real parser."""
    from eval.bench_ocr import bench_ocr as run_bench
    from eval.bench_ocr import bench_ocr_retrieval

    def work() -> dict[str, object]:
        result: dict[str, object] = run_bench(corpus, pages)
        if retrieval:
            result["retrieval"] = bench_ocr_retrieval(corpus, queries, qrels, retrieval)
        return result

    result = run_cli(work)
    if as_json:
        out.print_json(data=result)
        return
    conditions: dict[str, dict[str, object]] = result["conditions"]  # type: ignore[assignment]
    for name, run in conditions.items():
        cer = run["cer"]
        shown = f"{float(cer) * 100:.2f}%" if isinstance(cer, float | int) else "n/a"
        out.print(f"{name:<10} CER {shown}  {run['pages_per_s']} pages/s  ({run['pages']} pages, "
                  f"{run['failed_pages']} failed, {run['seconds']} s; per page: median CER "
                  f"{_percent(run['cer_median_page'])}, worst {_percent(run['cer_worst_page'])}; "
                  f"mean confidence {run['mean_confidence']})")
    found = result.get("retrieval")
    if isinstance(found, dict):
        out.print(f"retrieval over {found['documents']} abstracts, {found['queries']} queries "
                  f"(hybrid search):")
        for name in ("text", "ocr"):
            m = found[name]
            out.print(f"  {name:<4} nDCG@10 {m['ndcg@10']:.4f}  Recall@100 {m['recall@100']:.4f}  "
                      f"MRR@10 {m['mrr@10']:.4f}  ({m['chunks']} chunks, ingest {m['ingest_s']} s, "
                      f"parse {m['parse_s']} s)")


def bench_sources(
    documents: Annotated[int, typer.Option(help="Memos each source holds.", min=10)] = 1000,
    kinds: Annotated[str, typer.Option(
        help="Source kinds, comma-separated: folder, smb (needs root and Samba), imap "
        "(needs Dovecot), web.")] = "folder,smb,imap,web",
    as_json: JsonOpt = False,
) -> None:
    """Sync a source of each kind from a real server on loopback three times: first, again
    unchanged, and after 10 documents changed (a mailbox: 10 new messages); seconds and
    documents/s of each, the unchanged re-sync as a share of the first, and count checks."""
    from core.sources import KINDS
    from eval.bench_sources import bench_sources as run_bench

    chosen = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = sorted(set(chosen) - set(KINDS))
    if not chosen or unknown:
        raise typer.BadParameter(f"unknown kind(s) {unknown}: {', '.join(KINDS)}",
                                 param_hint="--kinds")

    def progress(kind: str, stage: str) -> None:
        if not as_json:
            err.print(f"{kind}: {stage}")

    result = run_cli(lambda: run_bench(documents, chosen, on_progress=progress))
    if as_json:
        out.print_json(data=result)
        return
    out.print(f"{result['documents']} documents per source, {result['changed']} changed for "
              f"the third sync; warm-up (model, first ingest) {result['warm_up_s']} s, untimed")
    out.print(f"{'kind':<7} {'docs':>5} {'first s':>8} {'docs/s':>7} {'unchanged s':>12} "
              f"{'docs/s':>8} {'changed s':>10} {'docs/s':>7} {'unch/first':>11}  checks")
    for kind, run in result["kinds"].items():
        if "skipped" in run:
            out.print(f"{kind:<7} skipped: {run['skipped']}")
            continue
        first, same, changed = run["first"], run["unchanged"], run["changed"]
        ratio = run["unchanged_vs_first"]
        shown = f"{ratio * 100:.1f}%" if ratio is not None else "n/a"
        failed = [name for name, ok in run["checks"].items() if not ok]
        failed += [f"{sync}: {run[sync]['error']}" for sync in ("first", "unchanged", "changed")
                   if run[sync]["error"]]
        out.print(f"{kind:<7} {run['documents']:>5} {first['seconds']:>8.2f} "
                  f"{first['documents_per_s']:>7.1f} {same['seconds']:>12.2f} "
                  f"{same['documents_per_s']:>8.1f} {changed['seconds']:>10.2f} "
                  f"{changed['documents_per_s']:>7.1f} {shown:>11}  "
                  + ("ok" if not failed else "FAILED " + "; ".join(failed)))
    out.print(f"goal: an unchanged re-sync under {result['unchanged_goal'] * 100:g}% of the "
              "first sync's time; imap's third sync adds new messages (messages never change)")


def bench_cli(
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="An ingested data dir to run the commands on. Default: "
        "ENCLAVE_DATA_DIR.")] = None,
    runs: Annotated[int, typer.Option(help="Runs of each command; the median is shown.",
                                      min=1)] = 5,
    query: Annotated[str, typer.Option(help="What `enclave search` looks for.")] = "x",
    top: Annotated[int, typer.Option(help="Packages shown by import time.", min=1)] = 8,
    as_json: JsonOpt = False,
) -> None:
    """Cold start of status, search, users list, jobs list and audit list: wall time of a
    fresh process (median of N), and where its imports go (python -X importtime)."""
    from core.settings import Settings
    from eval.bench_cli import bench_cli as run_bench

    folder = data_dir or run_cli(Settings).resolved_data_dir
    result = run_cli(lambda: run_bench(folder, runs, query, top))
    if as_json:
        out.print_json(data=result)
        return
    out.print(f"{result['data_dir']}: median of {result['runs']} cold runs, embedding "
              f"{result['embedding']}, load average {result['load_average']}")
    for row in result["commands"]:
        tops = ", ".join(f"{t['package']} {t['self_s']:.2f}" for t in row["top_imports"])
        heavy = f"; LOADED {', '.join(row['heavy_loaded'])}" if row["heavy_loaded"] else ""
        failed = f"; FAILED {row['error']}" if row["error"] else ""
        out.print(f"{row['command']:<12} {row['median_s']:>6.2f} s wall, "
                  f"{row['cpu_median_s']:.2f} s CPU; imports {row['import_s']:.2f} s in "
                  f"{row['modules']} modules: {tops}{heavy}{failed}")


def _percent(value: object) -> str:
    return f"{float(value) * 100:.2f}%" if isinstance(value, float | int) else "n/a"


SEC10Q = SCIFACT.parent / "sec10q" / "docs"


def bench_pdf(
    folder: Annotated[Path, typer.Argument(help="A folder of PDFs (searched recursively).")]
    = SEC10Q,
    limit: Annotated[int | None, typer.Option(help="Only the first N PDFs.", min=1)] = None,
    retrieval: Annotated[int, typer.Option(
        "--retrieval", min=0, help="Also ingest this many SciFact abstracts as text-layer PDFs "
        "read each way, and as text, and compare nDCG@10; 0: skip.")] = 300,
    corpus: CorpusOpt = SCIFACT / "corpus.jsonl",
    queries: QueriesOpt = SCIFACT / "queries.jsonl",
    qrels: QrelsOpt = SCIFACT / "qrels" / "train.tsv",
    as_json: JsonOpt = False,
) -> None:
    """pdfminer's and pdfium's ways of reading a PDF's text layer (ENCLAVE_INGEST__PDF_TEXT),
    on the same files in the same run: speed, characters per page, text and figures kept,
    table rows readable; and nDCG@10 over SciFact abstracts typeset as PDFs."""
    from eval.bench_pdf import bench_pdf as run_bench
    from eval.bench_pdf import bench_pdf_retrieval

    def progress(stage: str, done: int, total: int) -> None:
        if not as_json and (done == total or done % 10 == 0):
            err.print(f"{stage}: {done}/{total}")

    def work() -> dict[str, object]:
        result: dict[str, object] = run_bench(folder, limit, on_progress=progress)
        if retrieval:
            result["retrieval"] = bench_pdf_retrieval(corpus, queries, qrels, retrieval)
        return result

    result = run_cli(work)
    if as_json:
        out.print_json(data=result)
        return
    ways: dict[str, dict[str, object]] = result["ways"]  # type: ignore[assignment]
    base = result["base"]
    out.print(f"{result['files']} PDFs under {result['folder']}, OCR off, the two ways taking "
              f"turns file by file; ratios against {base}; words and figures: of {base}'s, "
              "per page; labelled: figures in one line with a word of their row")
    out.print(f"{'way':<9} {'seconds':>8} {'pages/s':>8} {'speed':>6} {'chars/page':>10} {'chars':>6} "
              f"{'pages':>6} {'thin':>5} {'failed':>6} {'words':>8} {'figures':>8} {'labelled':>8}")
    for name, run in ways.items():
        failed: list[str] = run["failed"]  # type: ignore[assignment]
        out.print(f"{name:<9} {run['seconds']:>8} {run['pages_per_s']:>8} {run['speed_vs_base']:>5}x "
                  f"{run['chars_per_page']:>10} {run['chars_vs_base']:>5}x {run['pages']:>6} "
                  f"{run['thin_pages']:>5} {len(failed):>6} {_percent(run['words_of_base_kept']):>8} "
                  f"{_percent(run['figures_of_base_kept']):>8} "
                  f"{_percent(run['figures_in_labelled_rows']):>8}")
    found = result.get("retrieval")
    if isinstance(found, dict):
        out.print(f"retrieval over {found['documents']} SciFact abstracts as PDFs, "
                  f"{found['queries']} claims (hybrid search):")
        for name in ("text", *ways):
            m = found[name]
            out.print(f"  {name:<9} nDCG@10 {m['ndcg@10']:.4f}  Recall@100 {m['recall@100']:.4f}  "
                      f"MRR@10 {m['mrr@10']:.4f}  ({m['chunks']} chunks, ingest {m['ingest_s']} s, "
                      f"parse {m['parse_s']} s)")
