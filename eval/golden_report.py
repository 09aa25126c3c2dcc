"""The report of ``enclave eval golden``: one HTML document that puts the configurations side by
side and, against a baseline, says what changed, down to the question.

The document is self-contained (no script, and no stylesheet, font or picture fetched from
anywhere): it is opened inside the network, kept next to the audit trail and mailed around.
Every string a run carries came from a model, a golden file or whoever ran it, so each one is
escaped before it meets the markup. Nothing here reads the clock: the same runs give the same
bytes, so two reports can be diffed.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from core.eval_runs import DONE, EvalRun
from eval.golden_score import GROUPS, MOVED

DASH = "–"
ANSWER_CHARS = 300

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:2em auto;
max-width:1200px;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0}
th,td{border:1px solid #d6d6d6;padding:.25em .6em;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.group th{background:#f1f3f6}thead th{background:#e6eaf0}
.id,code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;color:#555}
.failed,.bad,.worse{color:#b3261e}.done,.ok,.better{color:#1e6b2e}.running{color:#8a6d00}
.reason{color:#b3261e;font-size:.9em;max-width:22em;white-space:pre-wrap}
tr.disagree{background:#fff6e0}td.answer{max-width:28em;white-space:pre-wrap;font-size:.9em}
figure{margin:1em 0}figcaption{color:#555}svg{max-width:100%;height:auto}
pre{white-space:pre-wrap;font-size:.85em;margin:.3em 0}
"""


def render_report(runs: Sequence[EvalRun], baseline: EvalRun | None = None, *,
                  title: str = "enclave evaluation") -> str:
    """One self-contained HTML document about ``runs``, compared with ``baseline`` if given."""
    parts = ['<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{_e(title)}</h1>", _overview(runs, baseline), _side_by_side(runs), _plots(runs)]
    if baseline is not None:
        parts.append(_against(runs, baseline))
    elif len(_done(runs)) > 1:
        parts.append(_across(_done(runs)))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _e(value: object) -> str:
    return html.escape(str(value))


def _done(runs: Iterable[EvalRun]) -> list[EvalRun]:
    return [r for r in runs if r.status == DONE]


def _figures(run: EvalRun) -> Mapping[str, Any]:
    # A run that failed or is still running has nothing measured, whatever its dict holds.
    return run.figures if run.status == DONE else {}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _fmt(value: Any, kind: str) -> str:
    v = _num(value)
    if v is None:
        return DASH
    return {"rate": f"{v * 100:.1f}%", "seconds": f"{v:.2f} s", "tokens": f"{v:.1f}"}.get(
        kind, f"{v:,.0f}")


def _delta(old: Any, new: Any, kind: str, better: int) -> tuple[str, str]:
    """(text, css class) of the change; rates move in percentage points."""
    a, b = _num(old), _num(new)
    if a is None or b is None:
        return DASH, ""
    digits = {"seconds": 2, "count": 0}.get(kind, 1)
    change = round((b - a) * (100 if kind == "rate" else 1), digits)
    if change == 0:
        return f"{0:.{digits}f}", ""
    unit = {"rate": " pp", "seconds": " s"}.get(kind, "")
    verdict = {1: "better", -1: "worse"}.get((1 if change > 0 else -1) * better, "")
    return f"{change:+.{digits}f}{unit}", verdict


def _when(moment: datetime | None) -> str:
    if moment is None:
        return DASH
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # stored naive means UTC
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _head(run: EvalRun) -> str:
    """A run's column header: configuration, short id, status and, if it failed, why."""
    cell = (f"{_e(run.config)}<br><span class=id>{_e(run.run_id[:8])}</span> "
            f"<span class={_e(run.status)}>{_e(run.status)}</span>")
    return cell + (f'<div class="reason">{_e(run.reason)}</div>' if run.reason else "")


def _overview(runs: Sequence[EvalRun], baseline: EvalRun | None) -> str:
    every = [*runs, *([baseline] if baseline is not None else [])]
    sets = dict.fromkeys((r.golden, r.golden_sha256) for r in every)
    out = [f"<p>Golden set <b>{_e(name)}</b> (sha256 <code>{_e(sha[:12])}</code>)</p>"
           for name, sha in sets]
    if len(sets) > 1:
        out.append("<p class=bad>These runs asked different golden sets: compare with care.</p>")
    out.append("<table><thead><tr><th>configuration</th><th>run</th><th>status</th><th>started"
               "</th><th>took</th><th>run by</th><th>settings</th></tr></thead><tbody>")
    for r in every:
        took = ((r.finished_at - r.started_at).total_seconds()
                if r.finished_at is not None else None)
        settings = json.dumps(r.settings, indent=1, sort_keys=True, default=str)
        mark = " (baseline)" if r is baseline else ""
        out.append(f"<tr><td>{_e(r.config)}{mark}</td><td class=id>{_e(r.run_id[:8])}</td>"
                   f"<td class={_e(r.status)}>{_e(r.status)}</td><td>{_when(r.started_at)}</td>"
                   f"<td class=n>{_fmt(took, 'seconds')}</td><td>{_e(r.created_by)}</td>"
                   f"<td><details><summary>settings</summary><pre>{_e(settings)}</pre>"
                   "</details></td></tr>")
    return "\n".join([*out, "</tbody></table>"])


def _side_by_side(runs: Sequence[EvalRun]) -> str:
    out = ["<h2>Configurations side by side</h2>"]
    if not runs:
        return out[0] + "\n<p>No runs to report.</p>"
    out.append("<table><thead><tr><th>metric</th>"
               + "".join(f"<th>{_head(r)}</th>" for r in runs) + "</tr></thead><tbody>")
    for group, metrics in GROUPS:
        out.append(f'<tr class="group"><th colspan="{len(runs) + 1}">{_e(group)}</th></tr>')
        for key, label, kind, _ in metrics:
            out.append(f"<tr><td>{_e(label)}</td>" + "".join(
                f"<td class=n>{_fmt(_figures(r).get(key), kind)}</td>" for r in runs) + "</tr>")
    return "\n".join([*out, "</tbody></table>"])


def _plots(runs: Sequence[EvalRun]) -> str:
    measured = [r for r in _done(runs) if r.figures]
    if not measured:
        return "<h2>Plots</h2>\n<p>No run finished with figures, so there is nothing to plot.</p>"
    from eval.golden_plots import plots  # matplotlib only when a report is drawn

    return "<h2>Plots</h2>\n" + "\n".join(
        f"<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>"
        for caption, svg in plots(measured))


def _against(runs: Sequence[EvalRun], baseline: EvalRun) -> str:
    out = [f"<h2>Against the baseline</h2>\n<p>Baseline: {_e(baseline.config)} "
           f"<span class=id>{_e(baseline.run_id[:8])}</span>, started {_when(baseline.started_at)} "
           f"by {_e(baseline.created_by)}.</p>"]
    if baseline.status != DONE:
        out.append(f"<p class=bad>The baseline run is {_e(baseline.status)}"
                   f"{': ' + _e(baseline.reason) if baseline.reason else ''}; it has nothing "
                   "to compare with.</p>")
        return "\n".join(out)
    for run in runs:
        if run.run_id == baseline.run_id:
            continue
        out.append(f"<h3>{_head(run)}</h3>")
        if run.status != DONE:
            out.append("<p>This run has no figures to compare.</p>")
            continue
        out.append("<table><thead><tr><th>metric</th><th>baseline</th><th>this run</th>"
                   "<th>change</th></tr></thead><tbody>")
        for group, metrics in GROUPS:
            out.append(f'<tr class="group"><th colspan="4">{_e(group)}</th></tr>')
            for key, label, kind, better in metrics:
                old, new = baseline.figures.get(key), run.figures.get(key)
                text, verdict = _delta(old, new, kind, better)
                out.append(f"<tr><td>{_e(label)}</td><td class=n>{_fmt(old, kind)}</td>"
                           f"<td class=n>{_fmt(new, kind)}</td>"
                           f'<td class="n {verdict}">{_e(text)}</td></tr>')
        out.append("</tbody></table>")
        out.append(_question_changes(baseline, run))
    return "\n".join(out)


def _by_id(results: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(r.get("id", f"#{i}")): r for i, r in enumerate(results, 1)}


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    what = [name for key, name in (("outcome", "outcome"), ("correct_outcome", "correctness"))
            if old.get(key) != new.get(key)]
    if {str(c) for c in old.get("cited") or ()} != {str(c) for c in new.get("cited") or ()}:
        what.append("citations")
    for key, name in (("token_f1", "token F1"), ("similarity", "similarity")):
        a, b = _num(old.get(key)), _num(new.get(key))
        if a is not None and b is not None and abs(b - a) > MOVED:
            what.append(f"{name} {b - a:+.2f}")
    return what


def _outcome(result: Mapping[str, Any] | None) -> str:
    if result is None:
        return DASH
    correct = result.get("correct_outcome")
    css = {True: "ok", False: "bad"}.get(correct, "") if isinstance(correct, bool) else ""
    mark = {"ok": " ✓", "bad": " ✗"}.get(css, "")
    return f'<span class="{css}">{_e(result.get("outcome", DASH))}{mark}</span>'


def _answer(result: Mapping[str, Any] | None) -> str:
    if result is None:
        return ""
    text = str(result.get("answer") or "")
    if not text and result.get("error"):
        text = f"error: {result['error']}"
    return _e(text if len(text) <= ANSWER_CHARS else text[:ANSWER_CHARS] + "…")


def _question_changes(baseline: EvalRun, run: EvalRun) -> str:
    old, new = _by_id(baseline.results), _by_id(run.results)
    rows = []
    for qid in [*new, *(q for q in old if q not in new)]:
        a, b = old.get(qid), new.get(qid)
        what = ["added"] if a is None else ["removed"] if b is None else _changes(a, b)
        if not what:
            continue
        question = (b or a or {}).get("question", "")
        rows.append(f"<tr><td><code>{_e(qid)}</code></td><td>{_e(question)}</td>"
                    f"<td>{_e(', '.join(what))}</td><td>{_outcome(a)} → {_outcome(b)}</td>"
                    f'<td class="answer">{_answer(a)}</td><td class="answer">{_answer(b)}</td></tr>')
    head = "<h4>Per question: what changed</h4>"
    if not rows:
        return f"{head}\n<p>No question changed.</p>"
    return "\n".join([head, "<table class=changes><thead><tr><th>id</th><th>question</th>"
                      "<th>what changed</th><th>outcome: baseline → this run</th>"
                      "<th>baseline answer</th><th>this run's answer</th></tr></thead><tbody>",
                      *rows, "</tbody></table>"])


def _across(runs: Sequence[EvalRun]) -> str:
    """Outcome of every question in every configuration; rows where they disagree marked."""
    tables = [_by_id(r.results) for r in runs]
    ids = list(dict.fromkeys(q for t in tables for q in t))
    out = ["<h2>Per question, across configurations</h2>",
           "<table class=across><thead><tr><th>id</th><th>question</th><th>expected</th>"
           + "".join(f"<th>{_e(r.config)}<br><span class=id>{_e(r.run_id[:8])}</span></th>"
                     for r in runs) + "<th>agree</th></tr></thead><tbody>"]
    disagreeing = 0
    for qid in ids:
        found = [t.get(qid) for t in tables]
        first = next(r for r in found if r is not None)
        disagree = len({None if r is None else r.get("outcome") for r in found}) > 1
        disagreeing += disagree
        answerable = first.get("answerable")
        expected = DASH if not isinstance(answerable, bool) else (
            "answerable" if answerable else "unanswerable")
        out.append(f"<tr{' class=disagree' if disagree else ''}><td><code>{_e(qid)}</code></td>"
                   f"<td>{_e(first.get('question', ''))}</td><td>{expected}</td>"
                   + "".join(f"<td>{_outcome(r)}</td>" for r in found)
                   + f"<td>{'≠' if disagree else ''}</td></tr>")
    out.append("</tbody></table>")
    out.append(f"<p>{disagreeing} of {len(ids)} questions get different outcomes.</p>")
    return "\n".join(out)
