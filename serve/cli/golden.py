"""``enclave eval golden`` and ``enclave golden ...``: the owner's own questions.

Exit codes of ``eval golden``:

- 0: every configuration ran and passed its gate;
- 2: a usage error (a malformed golden file names its line and column; nothing runs);
- 5: a run failed the gate: a ``--fail-if`` condition held, a figure fell below the
  baseline's beyond ``--tolerance``, or more questions than ``--max-regressions`` got worse;
- 6: a configuration could not run (its reason is printed; the others ran), no gate failed.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import InputError
from serve.cli.common import container_scope, err, out, progress, run_cli

EXIT_GATE = 5
EXIT_CONFIG = 6

golden_app = typer.Typer(help="Golden sets: the owner's questions, kept in the database.",
                         no_args_is_help=True)

def eval_golden(
    file: Annotated[Path | None, typer.Argument(help="A golden file (JSONL).")] = None,
    golden_set: Annotated[str | None, typer.Option(
        "--set", help="A golden set kept in the database, instead of a file.")] = None,
    config: Annotated[list[str] | None, typer.Option(
        "--config", help="NAME=ENVFILE: ENCLAVE_* settings laid over this process's "
        "(repeatable; default: the settings as they are).")] = None,
    baseline: Annotated[str | None, typer.Option(
        "--baseline", help="A stored run (id or a unique prefix) to compare every run with.")]
    = None,
    fail_if: Annotated[list[str] | None, typer.Option(
        "--fail-if", help="METRIC<VALUE (or <=, >, >=): the gate fails when it holds.")] = None,
    tolerance: Annotated[float, typer.Option(
        "--tolerance", min=0.0, max=1.0,
        help="How far a figure may fall below the baseline's (rates: 0.02 = 2 points).")] = 0.02,
    max_regressions: Annotated[int | None, typer.Option(
        "--max-regressions", min=0,
        help="With --baseline: fail when more questions than this got worse.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report here.")]
    = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write every figure here.")]
    = None,
) -> None:
    """Ask a golden set once per configuration; report, store the runs, and gate."""
    from core.golden import golden_sha256, load_golden
    from eval.golden import parse_config, run_golden
    from eval.golden_score import gate, parse_condition, regressions

    def work() -> dict[str, Any]:
        if (file is None) == (golden_set is None):
            raise InputError("name a golden FILE or --set NAME (one of them)")
        conditions = [parse_condition(c) for c in fail_if or ()]
        configs = [parse_config(c) for c in config or ["default"]]
        if len({c.name for c in configs}) < len(configs):
            raise InputError("two configurations have the same name")
        with container_scope() as home:
            if file is not None:
                questions, sha = load_golden(file)
                golden = str(file)
            else:
                assert golden_set is not None
                questions = home.golden.questions(golden_set)
                sha, golden = golden_sha256(questions), f"set:{golden_set}"
            base = home.eval_runs.get(baseline) if baseline else None
            if base is not None and base.status != "done":
                raise InputError(f"the baseline run {base.run_id} did not finish "
                                 f"({base.status}: {base.reason}); name a run that did")
            with progress(True) as bar:
                task = bar.add_task("asking", total=None) if bar else None

                def tick(name: str, done: int, total: int) -> None:
                    if bar is not None:
                        bar.update(task, description=f"asking ({name})", completed=done,
                                   total=total)

                runs = run_golden(home, questions, golden, sha, configs,
                                  f"cli:{getpass.getuser()}", tick)
            result: dict[str, Any] = {"golden": golden, "golden_sha256": sha,
                                      "baseline": base.run_id if base else None, "runs": []}
            for run in runs:
                failures = (gate(run.figures, conditions, base.figures if base else None,
                                 tolerance) if run.status == "done" else [])
                changed = regressions(run.results, base.results) if base else []
                if max_regressions is not None and len(changed) > max_regressions:
                    failures.append(f"{len(changed)} questions got worse than in the baseline "
                                    f"(at most {max_regressions} allowed)")
                result["runs"].append({**run.summary(), "gate_failures": failures,
                                       "regressions": changed, "results": list(run.results)})
            if html is not None:
                from eval.golden_report import render_report

                html.write_text(render_report(runs, base), encoding="utf-8")
            return result

    result = run_cli(work)
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    _print(result)
    runs = result["runs"]
    if any(r["gate_failures"] for r in runs):
        raise typer.Exit(EXIT_GATE)
    if any(r["status"] != "done" for r in runs):
        raise typer.Exit(EXIT_CONFIG)


def _print(result: dict[str, Any]) -> None:
    from eval.golden_score import GROUPS

    runs = result["runs"]
    names = [f"{r['config']} ({r['run_id'][:8]})" for r in runs]
    width = max([16, *(len(n) + 2 for n in names)])
    labels = max(len(m[1]) for _, group in GROUPS for m in group) + 4
    out.print(f"golden: {result['golden']}" + (f"   baseline: {result['baseline'][:8]}"
                                                 if result["baseline"] else ""))
    out.print(" " * labels + "".join(f"{n:>{width}}" for n in names))
    for group, metrics in GROUPS:
        out.print(group)
        for key, label, kind, _ in metrics:
            cells = [_cell(r["figures"].get(key) if r["status"] == "done" else None, kind)
                     for r in runs]
            out.print(f"  {label:<{labels - 2}}" + "".join(f"{c:>{width}}" for c in cells))
    for r in runs:
        if r["status"] != "done":
            err.print(f"configuration {r['config']} failed: {r['reason']}")
        for failure in r["gate_failures"]:
            err.print(f"gate failed ({r['config']}): {failure}")
        for changed in r["regressions"]:
            err.print(f"regression ({r['config']}): {changed}")


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f}%" if kind == "rate" else f"{value:g}"


# -- golden sets in the database ----------------------------------------------------------------

SetArg = Annotated[str, typer.Argument(help="The golden set's name.")]


@golden_app.command("list")
def list_sets(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Golden sets with their number of questions."""
    def work() -> list[dict[str, Any]]:
        with container_scope() as c:
            return [{"name": s.name, "questions": s.questions,
                     "updated_at": s.updated_at.isoformat()} for s in c.golden.sets()]

    sets = run_cli(work)
    if as_json:
        out.print_json(data=sets)
        return
    for s in sets:
        out.print(f"{s['name']:<32} {s['questions']:>6} questions   {s['updated_at'][:19]}")


@golden_app.command("export")
def export(name: SetArg, output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="The file to write (default: standard output).")] = None) -> None:
    """A golden set as a golden file (JSONL), who added each question and from where."""
    from core.golden import dump_golden

    def work() -> str:
        with container_scope() as c:
            return dump_golden(c.golden.questions(name))

    text = run_cli(work)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


@golden_app.command("import")
def import_file(file: Annotated[Path, typer.Argument(help="A golden file (JSONL).")],
                name: Annotated[str, typer.Option("--set", help="The set to add to.")]) -> None:
    """Add every question of a golden file to a set: all of them, or none (a malformed line,
    an id the set holds already)."""
    from dataclasses import replace

    from core.admin_records import record_admin
    from core.golden import check_set_name, load_golden

    def work() -> int:
        check_set_name(name)
        questions, sha = load_golden(file)
        by = getpass.getuser()
        with container_scope() as c:
            c.golden.add_all(name, [replace(q, added_by=q.added_by or by) for q in questions])
            record_admin(c.audit, by, "golden.imported", "cli", set=name, file=str(file),
                         sha256=sha, questions=len(questions))
        return len(questions)

    out.print(f"added {run_cli(work)} questions to {name}")


@golden_app.command("add-from-audit")
def add_from_audit(
    record: Annotated[str, typer.Argument(help="The answer's audit record id.")],
    name: Annotated[str, typer.Option("--set", help="The golden set to add it to.")],
    qid: Annotated[str | None, typer.Option("--id", help="The question's id in the set.")] = None,
    document: Annotated[list[str] | None, typer.Option(
        "--document", help="What an answer should cite (repeatable; default: what it cited).")]
    = None,
    answerable: Annotated[bool | None, typer.Option(
        "--answerable/--not-answerable",
        help="Whether the documents answer it (default: whether it was answered).")] = None,
    reference: Annotated[str | None, typer.Option("--reference", help="A reference answer.")]
    = None,
    fact: Annotated[list[str] | None, typer.Option(
        "--fact", help="A fact the answer must contain (repeatable).")] = None,
) -> None:
    """Promote a recorded answer into a golden set, corrected where it was wrong."""
    from core.golden_sets import promote

    def work() -> dict[str, Any]:
        with container_scope() as c:
            q = promote(c.golden, c.audit, record, name, getpass.getuser(), "cli", qid=qid,
                        documents=document, answerable=answerable, reference=reference,
                        facts=fact or ())
            return q.to_json()

    out.print_json(data=run_cli(work))


@golden_app.command("remove")
def remove(name: SetArg, qid: Annotated[str, typer.Argument(help="The question's id.")]) -> None:
    """Remove one question from a golden set."""
    from core.admin_records import record_admin

    def work() -> None:
        with container_scope() as c:
            c.golden.remove(name, qid)
            record_admin(c.audit, getpass.getuser(), "golden.removed", "cli", set=name,
                         question_id=qid)

    run_cli(work)
    out.print(f"removed {qid} from {name}")


@golden_app.command("from-clapnq")
def from_clapnq(
    clapnq: Annotated[Path, typer.Argument(help="The ClapNQ folder (answerable/unanswerable).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The golden file to write.")],
    corpus: Annotated[Path, typer.Option(
        "--corpus", help="A folder to write the passages into, one Markdown file each, "
        "for `enclave ingest`.")],
) -> None:
    """Convert ClapNQ into a golden file and a corpus folder."""
    from eval.golden_clapnq import convert

    def work() -> tuple[int, int]:
        return convert(clapnq, output, corpus)

    questions, passages = run_cli(work)
    out.print(f"{questions} questions -> {output}; {passages} passages -> {corpus}")
