"""``enclave ask``, ``chat`` and ``demo``: answers, through the one answer path
(:class:`serve.answering.service.AnswerService`), as every other channel's."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from core.errors import InputError
from serve.cli.common import (
    GroupOpt,
    JsonOpt,
    cli_principal,
    container_scope,
    err,
    out,
    run_cli,
)
from serve.cli.documents import _pages, _snippet
from serve.cli.render import answer_json, answer_lines

if TYPE_CHECKING:
    from serve.answering.service import Reply


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

    def work() -> Reply:
        with container_scope() as c:
            service = c.answer_service
            return service.answer(principal, service.prepare(principal, question, channel="cli"))

    reply = run_cli(work)
    answer = reply.answer
    if as_json:
        out.print_json(data=answer_json(answer, checks=verbose))
        return
    for line in answer_lines(answer, checks=verbose):
        out.print(line)
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in answer.timings.items())
    err.print(f"model {answer.model}; {timings}; audit record {reply.audit_seq} ({reply.audit_id})")


def chat(
    user: Annotated[str, typer.Option("--user", "-u", help="Who is asking.")] = "cli",
    group: GroupOpt = None,
) -> None:
    """Ask questions one per line (stdin); a follow-up is read in the light of earlier turns."""
    from serve.answering.exchange import Turn

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
                service = c.answer_service
                try:
                    exchange = service.prepare(principal, question, history, channel="cli")
                    answer = service.answer(principal, exchange).answer
                except InputError as exc:
                    err.print(f"error: {exc}")
                    continue
                if answer.standalone_question != question:
                    out.print(f"(read as: {answer.standalone_question})")
                for text in answer_lines(answer):
                    out.print(text)
                out.print("")
                history.append(Turn(question, answer.text))

    run_cli(work)


def demo() -> None:
    """Ingest the bundled sample documents, search, and ask (what `make demo` runs)."""
    from serve.cli.demo import DEMO_QUESTIONS, DEMO_SEARCHES, write_samples

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
                service = c.answer_service
                reply = service.answer(principal, service.prepare(principal, question,
                                                                  channel="cli"))
                for line in answer_lines(reply.answer, quote_chars=160, checks=True):
                    out.print(f"  {line}" if line else "")
                out.print(f"  (audit record {reply.audit_seq})")
            check = c.audit.verify()
            first = check.first
            state = "intact" if first is None else f"BROKEN at record {first.seq}"
            out.print(f"\naudit trail: {check.records} records, chain {state} "
                      "(enclave audit list; enclave audit verify)", style="bold")

    run_cli(work)
