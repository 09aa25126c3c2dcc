"""The ``enclave`` command line.

Exit codes: 0 success; 1 a backend (store, database) is unavailable; 2 a usage error;
3 ``ingest`` finished but some files failed (each listed with its reason); 4 ``audit
verify`` found the chain broken (the first broken record is named); 5 ``eval golden``'s
gate failed; 6 an ``eval golden`` configuration could not run (the others did).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from serve.cli import answers, audit, bench, documents, eval, golden, jobs, ops, sources, users
from serve.cli.common import EXIT_USAGE, err

app = typer.Typer(
    help="enclave: private retrieval over your documents, on your own hardware.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
commands: list[Callable[..., None]] = [
    documents.ingest, documents.search, answers.ask, answers.chat, documents.delete,
    documents.status, ops.serve, answers.demo, jobs.worker, jobs.beat,
]
for command in commands:
    app.command()(command)

bench_app = typer.Typer(help="Benchmarks that print figures (not tests).", no_args_is_help=True)
benches: dict[str, Callable[..., None]] = {
    "ingest": bench.bench_ingest, "jobs": bench.bench_jobs, "audit": bench.bench_audit,
    "chat": bench.bench_chat, "search": bench.bench_search, "ocr": bench.bench_ocr,
    "sources": bench.bench_sources, "pdf": bench.bench_pdf,
    "cli": bench.bench_cli,
}
for name, command in benches.items():
    bench_app.command(name)(command)
app.add_typer(bench_app, name="bench")

eval_app = typer.Typer(help="Quality measured on public benchmarks and your golden sets.",
                       no_args_is_help=True)
eval_app.command("retrieval")(eval.retrieval)
eval_app.command("report")(eval.report)
eval_app.command("answers")(eval.eval_answers)
eval_app.command("golden")(golden.eval_golden)
app.add_typer(eval_app, name="eval")
app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(sources.sources_app, name="sources")
app.add_typer(golden.golden_app, name="golden")
app.add_typer(users.users_app, name="users")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(ops.db_app, name="db")
app.add_typer(ops.health_app, name="health")


def main() -> None:
    try:
        app()
    except Exception as exc:
        # pydantic is imported only once something failed: `enclave --help` never loads it.
        from pydantic import ValidationError

        if not isinstance(exc, ValidationError):
            raise
        # Settings that cannot be used (ENCLAVE_*): say which, without a stack trace.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        err.print(f"configuration error: {problems}")
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
