"""Evaluation over HTTP: runs and their reports, and the golden sets they ask.

Admins and auditors both use these routes: admins run evaluations (``enclave eval golden``)
and read the results; auditors turn recorded answers into golden questions, correcting what a
good answer would have cited. Adding and removing golden questions is recorded on the trail.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response

from core.admin_records import record_admin
from core.container import Container
from core.errors import InputError, NotFound
from core.eval_runs import EvalRun
from core.golden import check_set_name, dump_golden
from core.golden_sets import promote
from serve.http.deps import ContainerDep, EvaluatorDep, require_any_role
from serve.http.eval_schemas import (
    GoldenPromote,
    GoldenQuestionOut,
    GoldenRemoved,
    GoldenSetDetail,
    GoldenSetList,
    GoldenSetOut,
    RunDetail,
    RunList,
    RunSummary,
)

_ROLES = Depends(require_any_role("admin", "auditor"))
eval_router = APIRouter(prefix="/v1/eval", tags=["evaluation"], dependencies=[_ROLES])
golden_router = APIRouter(prefix="/v1/golden", tags=["evaluation"], dependencies=[_ROLES])

MAX_REPORT_RUNS = 6  # beyond this the plots' bars are too thin to read
# The report is inline <style> and inline <svg>, nothing else: no script, nothing fetched,
# and opened on its own it is sandboxed too. The admin page shows it in a frame of its own.
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
              "form-action 'none'; frame-ancestors 'self'; sandbox")
REPORT_HEADERS = {"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff",
                  "Referrer-Policy": "no-referrer", "X-Frame-Options": "SAMEORIGIN",
                  "Cache-Control": "no-store"}
# The plots are drawn through matplotlib's pyplot, whose state is global: one at a time.
_drawing = threading.Lock()


# -- runs ------------------------------------------------------------------------------------


@eval_router.get("/runs", response_model=RunList)
def list_runs(container: ContainerDep, limit: Annotated[int, Query(ge=1, le=200)] = 50,
              before: Annotated[datetime | None, Query(
                  description="Cursor: next_before (runs started before it).")] = None,
              ) -> RunList:
    """Evaluation runs, newest first, without their per-question results."""
    found = container.eval_runs.runs(limit + 1, before)
    page = found[:limit]
    return RunList(runs=[RunSummary.of(r) for r in page],
                   next_before=page[-1].started_at if len(found) > limit else None)


@eval_router.get("/runs/{run_id}", response_model=RunDetail)
def show_run(run_id: str, container: ContainerDep) -> RunDetail:
    """One run with the outcome of each question (a unique prefix of its id will do)."""
    return RunDetail.load(container.eval_runs.get(run_id))


@eval_router.get("/report", response_class=HTMLResponse)
def report(container: ContainerDep,
           run: Annotated[list[str] | None, Query(
               description=f"A run to show; repeat for side by side (at most {MAX_REPORT_RUNS}).")
           ] = None,
           baseline: Annotated[str | None, Query(
               description="A run to compare them with.")] = None) -> HTMLResponse:
    """The HTML report of runs (one self-contained document with inline plots)."""
    wanted = list(dict.fromkeys(run or ()))
    if not wanted:
        raise InputError("name at least one run: /v1/eval/report?run=ID")
    if len(wanted) + (baseline is not None) > MAX_REPORT_RUNS:
        raise InputError(f"a report shows at most {MAX_REPORT_RUNS} runs, the baseline included")
    runs = [_run(container, r) for r in wanted]
    base = _run(container, baseline) if baseline is not None else None
    if base is not None:
        runs = [r for r in runs if r.run_id != base.run_id]  # shown once, as the baseline
        if not runs:
            raise InputError("name a run besides the baseline")
    # Imported here: matplotlib and the report are paid for by those who ask for one.
    from eval.golden_report import render_report

    with _drawing:
        html = render_report(runs, baseline=base, title=_title(runs, base))
    return HTMLResponse(html, headers=REPORT_HEADERS)


def _run(container: Container, run_id: str) -> EvalRun:
    try:
        return container.eval_runs.get(run_id)
    except NotFound as exc:
        raise NotFound(f"{exc}; GET /v1/eval/runs lists them") from exc


def _title(runs: list[EvalRun], base: EvalRun | None) -> str:
    shown = ", ".join(r.config for r in runs)
    return f"Evaluation: {shown}" + (f" against {base.config}" if base else "")


# -- golden sets -----------------------------------------------------------------------------


@golden_router.get("/sets", response_model=GoldenSetList)
def list_sets(container: ContainerDep) -> GoldenSetList:
    """Golden sets with how many questions each holds."""
    return GoldenSetList(sets=[GoldenSetOut.of(s) for s in container.golden.sets()])


@golden_router.get("/sets/{name}", response_model=GoldenSetDetail,
                   responses={200: {"content": {"application/x-ndjson": {}}}})
def show_set(name: str, container: ContainerDep,
             format: Annotated[Literal["json", "jsonl"], Query(
                 description="jsonl: the golden file `enclave eval golden` reads.")] = "json",
             ) -> GoldenSetDetail | Response:
    """A set's questions, in order: JSON, or a golden file to download."""
    questions = container.golden.questions(check_set_name(name))
    if format == "jsonl":
        return Response(dump_golden(questions), media_type="application/x-ndjson",
                        headers={"Content-Disposition": f'attachment; filename="{name}.jsonl"'})
    return GoldenSetDetail(name=name, questions=[GoldenQuestionOut.of(q) for q in questions])


@golden_router.post("/sets/{name}/questions", response_model=GoldenQuestionOut)
def add_question(name: str, body: GoldenPromote, container: ContainerDep,
                 caller: EvaluatorDep) -> GoldenQuestionOut:
    """Promote an answer's audit record into set ``name`` (made when new), with corrections:
    what an answer should cite, whether it is answerable, a reference answer, facts."""
    corrections = body.model_dump(exclude={"from_record", "id"}, exclude_none=True)
    try:
        question = promote(container.golden, container.audit, body.from_record, name,
                           caller.user_id, "api", qid=body.id, **corrections)
    except NotFound as exc:
        raise NotFound(f"no audit record {body.from_record!r}") from exc
    return GoldenQuestionOut.of(question)


@golden_router.delete("/sets/{name}/questions/{qid}", response_model=GoldenRemoved)
def remove_question(name: str, qid: str, container: ContainerDep,
                    caller: EvaluatorDep) -> GoldenRemoved:
    """Remove a question from a set (a set with no question left is gone)."""
    found = next((q for q in container.golden.questions(check_set_name(name)) if q.qid == qid),
                 None)
    if found is None:
        raise NotFound(f"golden set {name!r} holds no question {qid!r}")
    container.golden.remove(name, qid)
    # What was removed, in full: the trail can tell what the set held before.
    record_admin(container.audit, caller.user_id, "golden.removed", "api", set=name,
                 question_id=qid, question=found.to_json())
    return GoldenRemoved(set=name, id=qid, removed=True)
