"""The ``enclave`` command line.

Exit codes: 0 success; 1 a backend (store, database) is unavailable; 2 a usage error;
3 ``ingest`` finished but some files failed (each listed with its reason); 4 ``audit
verify`` found the chain broken (the first broken record is named).
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from core.audit import Record
from core.errors import InputError
from core.names import validate_groups
from core.types import Answer, Hit, is_uuid, make_doc_id
from serve import cli_audit, cli_eval, cli_jobs, cli_ops, cli_users
from serve.audit_trail import Deletion, delete_document_recorded, record_admin, record_answer
from serve.cli_common import (
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    GroupOpt,
    JsonOpt,
    cli_principal,
    container_scope,
    err,
    out,
    progress,
    run_cli,
    shared_settings,
)
from serve.render import answer_json, answer_lines

if TYPE_CHECKING:
    from ingest.pipeline import IngestReport

app = typer.Typer(
    help="enclave: private retrieval over your documents, on your own hardware.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks that print figures (not tests).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
eval_app = typer.Typer(help="Quality measured on public benchmarks (not tests).", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
eval_app.command("retrieval")(cli_eval.retrieval)
eval_app.command("report")(cli_eval.report)
app.add_typer(cli_jobs.jobs_app, name="jobs")
app.add_typer(cli_users.users_app, name="users")
app.add_typer(cli_audit.audit_app, name="audit")
app.add_typer(cli_ops.db_app, name="db")
app.add_typer(cli_ops.health_app, name="health")
app.command()(cli_jobs.worker)

@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.")],
    group: GroupOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Parse, chunk, embed and store files; unchanged files are skipped."""
    from ingest.pipeline import FileResult

    def work() -> IngestReport:
        groups = validate_groups(group or ())  # printed as stored (core/names.py)
        with container_scope() as c:
            shown = progress(enabled=not as_json and sys.stderr.isatty())
            with shown as bar:
                task = bar.add_task("ingesting", total=None) if bar else None

                def on_file(result: FileResult) -> None:
                    if bar is not None and task is not None:
                        bar.update(task, advance=1, description=Path(result.source).name[:40])

                report = c.ingestor.ingest(paths, groups, on_file=on_file)
            record_admin(c, getpass.getuser(), "ingest.ran", "cli",
                         paths=[str(p.absolute()) for p in paths], groups=list(groups),
                         summary=_summary(report))
            return report

    report = run_cli(work)
    summary = _summary(report)
    if as_json:
        out.print_json(
            data={
                "summary": summary,
                "files": [
                    {"source": f.source, "status": f.status, "doc_id": f.doc_id,
                     "chunks": f.chunks, "pages": f.pages, "reason": f.reason}
                    for f in report.files
                ],
            }
        )
    else:
        for f in report.files:
            if f.status == "failed":
                out.print(f"FAILED  {f.source}: {f.reason}")
            else:
                out.print(f"{f.status:<9} {f.source} ({f.chunks} chunks)")
        access = ", ".join(validate_groups(group or ())) or "public"
        out.print(
            f"{summary['files']} files: {summary['ingested']} ingested, "
            f"{summary['unchanged']} unchanged, {summary['updated']} updated, "
            f"{summary['failed']} failed (access: {access})"
        )
    if report.failed:
        raise typer.Exit(EXIT_SOME_FAILED)


def _summary(report: IngestReport) -> dict[str, int]:
    return {
        "files": len(report.files),
        "ingested": report.count("ingested"),
        "unchanged": report.count("unchanged"),
        "updated": report.count("updated"),
        "failed": report.count("failed"),
        "repaired": report.repaired,
    }


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    user: Annotated[str, typer.Option("--user", "-u", help="Who is asking.")] = "cli",
    group: GroupOpt = None,
    k: Annotated[int, typer.Option("-k", help="How many results.", min=1, max=100)] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Hybrid search over what the user's groups may read (plus public documents)."""
    principal = run_cli(lambda: cli_principal(user, group))

    def work() -> list[Hit]:
        with container_scope() as c:
            return c.searcher.search(query, principal, k)

    hits = run_cli(work)
    if as_json:
        out.print_json(data={"query": query, "results": [_hit_json(h) for h in hits]})
        return
    if not hits:
        out.print("no results")
    for rank, hit in enumerate(hits, 1):
        ch = hit.chunk
        out.print(f"{rank}. {ch.meta.get('source')}  page {_pages(hit)}  score {hit.score:.3f}")
        out.print(f"   {_snippet(ch.text)}")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    user: Annotated[str, typer.Option("--user", "-u", help="Who is asking.")] = "cli",
    group: GroupOpt = None,
    as_json: JsonOpt = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also show the check of every sentence.")
    ] = False,
) -> None:
    """Answer from the documents the user may read, each sentence cited and checked."""
    principal = run_cli(lambda: cli_principal(user, group))

    def work() -> tuple[Answer, Record]:
        with container_scope() as c:
            answer = c.answerer.answer(question, principal)
            return answer, record_answer(c, principal, "cli", question, (), None, answer)

    answer, record = run_cli(work)
    if as_json:
        out.print_json(data=answer_json(answer, checks=verbose))
        return
    for line in answer_lines(answer, checks=verbose):
        out.print(line)
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in answer.timings.items())
    err.print(f"model {answer.model}; {timings}; audit record {record.seq} ({record.record_id})")


@app.command()
def chat(
    user: Annotated[str, typer.Option("--user", "-u", help="Who is asking.")] = "cli",
    group: GroupOpt = None,
) -> None:
    """Ask questions one per line (stdin); a follow-up is read in the light of earlier turns."""
    from serve.answer import Turn

    principal = run_cli(lambda: cli_principal(user, group))

    def work() -> None:
        history: list[Turn] = []
        with container_scope() as c:
            interactive = sys.stdin.isatty()
            while True:
                if interactive:
                    err.print("? ", end="")
                line = sys.stdin.readline()
                if not line:
                    return
                question = line.strip()
                if not question:
                    continue
                try:
                    answer = c.answerer.answer(question, principal, history)
                except InputError as exc:
                    err.print(f"error: {exc}")
                    continue
                record_answer(c, principal, "cli", question, history, None, answer)
                if answer.standalone_question != question:
                    out.print(f"(read as: {answer.standalone_question})")
                for text in answer_lines(answer):
                    out.print(text)
                out.print("")
                history.append(Turn(question, answer.text))

    run_cli(work)


@eval_app.command("answers")
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
    _print_bench({k: v for k, v in result.items() if k != "questions"}, False)


@app.command()
def delete(
    ref: Annotated[str, typer.Argument(help="A doc_id, or the path the document came from.")],
    legal_reason: Annotated[str | None, typer.Option(
        "--legal-reason", help="A deletion for legal reasons: also purge the texts the audit "
        "keeps of it; the reason is recorded.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a document everywhere: its chunks in Qdrant and its registry rows."""

    def work() -> Deletion:
        with container_scope() as c:
            info = c.ingestor.find(ref)
            doc_id = info.doc_id if info else (ref if is_uuid(ref) else make_doc_id(
                str(Path(ref).resolve())))
            return delete_document_recorded(c, getpass.getuser(), "cli", doc_id, legal_reason)

    done = run_cli(work)
    if as_json:
        out.print_json(data={"deleted": done.doc_id, "source": done.source,
                             "texts_purged": done.texts_purged,
                             "turns_redacted": done.turns_redacted})
    else:
        purged = (f"; {done.texts_purged} kept text(s) purged from the audit, "
                  f"{done.turns_redacted} conversation answer(s) redacted"
                  if done.texts_purged is not None else "")
        out.print(f"deleted {done.source} ({done.doc_id}){purged}")


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Documents, chunks and failures; checks that the registry and the store agree."""

    def work() -> dict[str, Any]:
        with container_scope() as c:
            ingestor = c.ingestor  # opens the store
            totals = c.registry.totals()
            docs = c.registry.documents()
            return {
                **totals,
                "stored_chunks": c.store.count(),
                "disagreements": ingestor.check(),
                "failures": [
                    {"source": d.source, "doc_id": d.doc_id, "reason": d.last_error}
                    for d in docs
                    if d.last_status == "failed"
                ],
            }

    data = run_cli(work)
    if as_json:
        out.print_json(data=data)
        return
    out.print(f"documents: {data['documents']}")
    out.print(f"chunks:    {data['chunks']} (in the store: {data['stored_chunks']})")
    out.print(f"failed:    {data['failed']}")
    for failure in data["failures"]:
        out.print(f"  {failure['source']}: {failure['reason']}")
    for problem in data["disagreements"]:
        out.print(f"DISAGREEMENT {problem} (run `enclave ingest` again to repair)")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default ENCLAVE_SERVE__HOST (127.0.0.1).")]
    = None,
    port: Annotated[int | None, typer.Option(help="Default ENCLAVE_SERVE__PORT (8000).")] = None,
) -> None:
    """Run the HTTP API (every route but /healthz and /readyz needs an API key)."""
    from core.container import Container
    from core.logs import configure as configure_logs
    from serve.app import create_app
    from serve.server import build_server, raise_open_files_limit

    def start() -> Container:
        settings = shared_settings()
        configure_logs(settings.log, default_level="INFO")
        container = Container(settings)
        container.database  # noqa: B018 - migrated, or refused when behind (database_migrate)
        container.audit  # noqa: B018 - an unreadable seal key refuses start-up, not an answer
        return container

    container = run_cli(start)
    settings = container.settings
    try:
        raise_open_files_limit()
        server = build_server(create_app(container), settings.serve, host, port)
        try:
            server.run()
        except KeyboardInterrupt:
            pass  # Ctrl-C before uvicorn's own signal handlers are in place: a normal stop
    finally:
        container.close()


@app.command()
def demo() -> None:
    """Ingest the bundled sample documents, search, and ask (what `make demo` runs)."""
    from serve.demo import DEMO_QUESTIONS, DEMO_SEARCHES, write_samples

    def work() -> None:
        with container_scope() as c:
            folders = write_samples(c.data_dir / "samples")
            out.print(f"Ingesting sample documents into {c.data_dir}", style="bold")
            for name, groups in (("public", ()), ("finance", ("finance",))):
                report = c.ingestor.ingest([folders[name]], groups)
                access = ", ".join(groups) or "public"
                for f in report.files:
                    detail = f.reason if f.status == "failed" else f"{f.chunks} chunks"
                    out.print(f"  {f.status:<9} {Path(f.source).name} [{access}] ({detail})")
            for question, principal in DEMO_SEARCHES:
                who = f"{principal.user_id} (groups: {', '.join(principal.groups) or 'none'})"
                out.print(f"\nsearch {question!r} as {who}", style="bold")
                hits = c.searcher.search(question, principal, 3)
                if not hits:
                    out.print("  no results this user may read")
                for rank, hit in enumerate(hits, 1):
                    source = Path(str(hit.chunk.meta.get("source"))).name
                    out.print(f"  {rank}. {source}  page {_pages(hit)}  score {hit.score:.3f}")
                    out.print(f"     {_snippet(hit.chunk.text, 160)}")
            for question, principal in DEMO_QUESTIONS:
                who = f"{principal.user_id} (groups: {', '.join(principal.groups) or 'none'})"
                out.print(f"\nask {question!r} as {who}", style="bold")
                answer = c.answerer.answer(question, principal)
                record = record_answer(c, principal, "cli", question, (), None, answer)
                for line in answer_lines(answer, quote_chars=160, checks=True):
                    out.print(f"  {line}" if line else "")
                out.print(f"  (audit record {record.seq})")
            check = c.audit.verify()
            first = check.first
            state = "intact" if first is None else f"BROKEN at record {first.seq}"
            out.print(f"\naudit trail: {check.records} records, chain {state} "
                      "(enclave audit list; enclave audit verify)", style="bold")

    run_cli(work)


@bench_app.command("ingest")
def bench_ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.")],
    embedding: Annotated[str, typer.Option(
        help="Embedding modes to compare, comma-separated; the first is the baseline.")]
    = "sentence-transformers,onnx-int8",
    as_json: JsonOpt = False,
) -> None:
    """Ingest into a fresh, temporary data dir per embedding mode: pages/s and chunks/s per
    stage, and each mode's rates as a ratio of the first's, measured in the same run."""
    from eval.bench import EMBEDDINGS
    from eval.bench import bench_ingest as run_bench

    modes = [m.strip() for m in embedding.split(",") if m.strip()]
    unknown = set(modes) - set(EMBEDDINGS)
    if not modes or unknown:
        raise typer.BadParameter(
            f"unknown embedding mode(s) {sorted(unknown)}: {', '.join(EMBEDDINGS)}",
            param_hint="--embedding")
    result = run_cli(lambda: run_bench(paths, modes))
    if as_json:
        out.print_json(data=result)
        return
    stages = ("parse", "chunk", "embed", "store", "total")
    for run in result["runs"]:
        out.print(f"{run['embedding']} ({run['model']}): {run['files']} files, "
                  f"{run['pages']} pages, {run['chunks']} chunks, {run['failed']} failed, "
                  f"{run['total_s']:.1f} s (model load {run['model_load_s']:.1f} s)")
        for stage in stages:
            ratio = run["ratio_vs_first"][stage]
            out.print(f"  {stage:<6} {run[f'{stage}_chunks_per_s']:>9.1f} chunks/s  "
                      f"{ratio:.2f}x {result['runs'][0]['embedding']}")


@bench_app.command("jobs")
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


@bench_app.command("audit")
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


@bench_app.command("chat")
def bench_chat(
    key: Annotated[str, typer.Option(help="An API key of the server's (enclave users add).")],
    url: Annotated[str, typer.Option(help="The running server.")] = "http://127.0.0.1:8000",
    concurrency: Annotated[str, typer.Option(help="Concurrent clients, e.g. 1,2,8.")] = "1,2,8",
    requests: Annotated[int, typer.Option(help="Chats per run.")] = 20,
    question: Annotated[str, typer.Option(help="What every chat asks.")]
    = "How many days of paid leave do employees get?",
    as_json: JsonOpt = False,
) -> None:
    """Fire concurrent chats at a running server: p50/p95, answers/s, errors by status."""
    from eval.bench_chat import bench_chat as run_bench

    counts = [int(n) for n in concurrency.split(",") if n.strip()]
    result = run_bench(url, key, question, counts, requests)
    if as_json:
        out.print_json(data=result)
        return
    for run in result["runs"]:
        out.print(
            f"concurrency {run['concurrency']}: {run['answered']}/{run['requests']} answered in "
            f"{run['seconds']} s ({run['answers_per_s']}/s, {run['throughput_vs_first']}x), "
            f"p50 {run['p50_s']} s, "
            f"p95 {run['p95_s']} s; statuses {run['statuses']}; errors {run['errors']}; "
            f"429/503 without Retry-After {run['rejected_without_retry_after']}"
        )


@bench_app.command("search")
def bench_search(
    chunks: Annotated[int, typer.Option(help="Chunks in the store.")] = 100_000,
    queries: Annotated[int, typer.Option(help="Queries to time.")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """p50/p95 latency of hybrid search with the access filter in the embedded store."""
    from eval.bench import bench_search as run_bench

    result = run_cli(lambda: run_bench(chunks, queries))
    _print_bench(result, as_json)


def _print_bench(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print_json(data=result)
        return
    for key, value in result.items():
        shown = f"{value:.3f}" if isinstance(value, float) else value
        out.print(f"{key:<28} {shown}")


def _hit_json(hit: Hit) -> dict[str, Any]:
    ch = hit.chunk
    return {
        "chunk_id": ch.chunk_id,
        "doc_id": ch.doc_id,
        "version": ch.version,
        "source": ch.meta.get("source"),
        "title": ch.meta.get("title"),
        "section": ch.section,
        "page_start": ch.page_start,
        "page_end": ch.page_end,
        "char_start": ch.char_start,
        "char_end": ch.char_end,
        "score": hit.score,
        "text": ch.text,
    }


def _pages(hit: Hit) -> str:
    start, end = hit.chunk.page_start, hit.chunk.page_end
    if start is None:
        return "-"
    return str(start) if end in (None, start) else f"{start}-{end}"


def _snippet(text: str, limit: int = 240) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def main() -> None:
    from pydantic import ValidationError

    try:
        app()
    except ValidationError as exc:
        # Settings that cannot be used (ENCLAVE_*): say which, without a stack trace.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        err.print(f"configuration error: {problems}")
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
