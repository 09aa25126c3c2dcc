"""How good one configuration's answers to a golden set are, and whether they pass a gate.

Per question: the outcome against what was expected (answered when the documents should
answer it, not answered otherwise), the citations of an answered question against the
documents it should cite, the expected facts found in the answer, and token F1 and
embedding similarity against the reference answer. Per run: the same as rates and
means, with latency percentiles and tokens per answer. Every rate is a fraction 0..1,
or None when nothing could be measured (no reference answers, no expected documents).

Citations count only when the question was answered: the quotes of a refusal are shown
as "closest passages", not as an answer's sources.
"""

from __future__ import annotations

import re
import statistics
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import InputError
from core.golden import GoldenQuestion
from core.types import Answer

OUTCOMES = ("answered", "not_found", "unverified")
_MARKER = re.compile(r"\[\d+\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")

# Every figure of a run, in the order reports show them.
# (figures key, label, kind, which way is better: 1 higher, -1 lower, 0 neither)
Metric = tuple[str, str, str, int]
GROUPS: tuple[tuple[str, tuple[Metric, ...]], ...] = (
    ("Questions", (
        ("questions", "questions asked", "count", 0),
        ("expected_answer", "answerable (expected)", "count", 0),
        ("expected_none", "unanswerable (expected)", "count", 0),
        ("errors", "questions that raised", "count", -1),
        ("outcome_accuracy", "outcome accuracy (answered iff answerable)", "rate", 1))),
    ("Answerable questions", (
        ("answerable_answered", "answered", "rate", 1),
        ("answerable_not_found", "not found", "rate", -1),
        ("answerable_unverified", "unverified", "rate", -1))),
    ("Unanswerable questions", (
        ("unanswerable_answered", "answered", "rate", -1),
        ("unanswerable_not_found", "not found (as it should)", "rate", 1),
        ("unanswerable_unverified", "unverified", "rate", 0))),
    ("Citations and answers", (
        ("citation_precision", "citation precision", "rate", 1),
        ("citation_recall", "citation recall", "rate", 1),
        ("facts_recall", "expected facts found", "rate", 1),
        ("token_f1", "token F1 against the reference", "rate", 1),
        ("similarity", "similarity to the reference", "rate", 1))),
    ("Cost", (
        ("latency_p50_s", "latency p50", "seconds", -1),
        ("latency_p95_s", "latency p95", "seconds", -1),
        ("prompt_tokens", "prompt tokens per answer", "tokens", -1),
        ("completion_tokens", "completion tokens per answer", "tokens", 0),
        ("seconds", "wall time of the run", "seconds", -1))),
)
METRICS: dict[str, Metric] = {m[0]: m for _, group in GROUPS for m in group}
# Which way is better, for --baseline; and what --fail-if may name.
HIGHER = tuple(key for key, (_, _, _, better) in METRICS.items() if better == 1)
GATED = tuple(METRICS)
MOVED = 0.1  # a token F1 or similarity change larger than this is worth a look
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
    ">": lambda a, b: a > b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}
_CONDITION = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|==|!=|<|>)\s*(-?[0-9]*\.?[0-9]+)\s*$")


def normalise(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, articles or extra spaces;
    citation markers removed first."""
    text = _MARKER.sub(" ", text).lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(answer: str, reference: str) -> float:
    got, want = normalise(answer).split(), normalise(reference).split()
    if not got or not want:
        return float(got == want)
    common = sum(min(got.count(t), want.count(t)) for t in set(got) & set(want))
    if not common:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def cites(expected: str, doc_id: str, source: str) -> bool:
    """A citation of ``doc_id`` at ``source`` is of the expected document: its id, its
    source, or a path that the source ends with."""
    return expected in (doc_id, source) or source.endswith("/" + expected.lstrip("/"))


@dataclass(frozen=True, slots=True)
class Asked:
    """One golden question and what happened when it was asked."""

    question: GoldenQuestion
    answer: Answer | None  # None: it raised
    seconds: float
    audit_id: str | None = None
    error: str | None = None


def score_question(asked: Asked, similarity: Callable[[str, str], float]) -> dict[str, Any]:
    q, a = asked.question, asked.answer
    outcome = a.outcome if a is not None else "error"
    answered = outcome == "answered"
    row: dict[str, Any] = {
        "id": q.qid, "question": q.question, "answerable": q.answerable, "outcome": outcome,
        "correct_outcome": answered == q.answerable, "answer": a.text if a else "",
        "cited": [], "citations": 0, "citation_precision": None, "citation_recall": None,
        "facts": list(q.facts), "facts_found": [], "token_f1": None, "similarity": None,
        "seconds": round(asked.seconds, 3), "prompt_tokens": None, "completion_tokens": None,
        "audit_id": asked.audit_id, "error": asked.error, "expected_documents": list(q.documents),
    }
    if a is None:
        return row
    if a.usage:
        row["prompt_tokens"] = a.usage.get("prompt_tokens")
        row["completion_tokens"] = a.usage.get("completion_tokens")
    citations = a.citations if answered else ()
    row["cited"] = list(dict.fromkeys(c.source for c in citations))
    row["citations"] = len(citations)
    if q.documents and q.answerable:
        if citations:
            hits = sum(any(cites(e, c.doc_id, c.source) for e in q.documents) for c in citations)
            row["citation_precision"] = hits / len(citations)
        row["citation_recall"] = sum(any(cites(e, c.doc_id, c.source) for c in citations)
                                     for e in q.documents) / len(q.documents)
    if q.answerable:
        text = normalise(a.text) if answered else ""
        row["facts_found"] = [bool(text) and normalise(f) in text for f in q.facts]
        if q.reference is not None:
            shown = a.text if answered else ""
            row["token_f1"] = round(token_f1(shown, q.reference), 4)
            row["similarity"] = round(similarity(shown, q.reference), 4) if shown else 0.0
    return row


def figures(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    yes = [r for r in rows if r["answerable"]]
    no = [r for r in rows if not r["answerable"]]
    out: dict[str, Any] = {"questions": len(rows), "expected_answer": len(yes),
                           "expected_none": len(no),
                           "errors": sum(r["outcome"] == "error" for r in rows)}
    for kind, group in (("answerable", yes), ("unanswerable", no)):
        for outcome in OUTCOMES:
            out[f"{kind}_{outcome}"] = _rate(sum(r["outcome"] == outcome for r in group),
                                             len(group))
    out["outcome_accuracy"] = _rate(sum(r["correct_outcome"] for r in rows), len(rows))
    # Precision over every citation of answered questions; recall per question, a
    # refusal of an answerable question counting as nothing found.
    cited = [r for r in yes if r["citation_precision"] is not None]
    total = sum(r["citations"] for r in cited)
    out["citation_precision"] = (
        round(sum(r["citation_precision"] * r["citations"] for r in cited) / total, 4)
        if total else None)
    out["citation_recall"] = _mean([r["citation_recall"] for r in yes])
    facts = [found for r in yes for found in r["facts_found"]]
    out["facts_recall"] = _rate(sum(facts), len(facts))
    out["token_f1"] = _mean([r["token_f1"] for r in yes])
    out["similarity"] = _mean([r["similarity"] for r in yes])
    seconds = [r["seconds"] for r in rows if r["outcome"] != "error"]
    out["latency_p50_s"] = round(statistics.median(seconds), 3) if seconds else None
    out["latency_p95_s"] = round(float(np.percentile(seconds, 95)), 3) if seconds else None
    out["prompt_tokens"] = _mean([r["prompt_tokens"] for r in rows], 1)
    out["completion_tokens"] = _mean([r["completion_tokens"] for r in rows], 1)
    return out


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(values: Sequence[float | None], digits: int = 4) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), digits) if present else None


# -- the gate ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


def parse_condition(text: str) -> Condition:
    """``citation_precision<0.9``: the run fails when this holds."""
    match = _CONDITION.match(text)
    if match is None:
        raise InputError(f"--fail-if {text!r}: write METRIC<VALUE (or <=, >, >=, ==, !=), "
                         "for example citation_precision<0.9")
    metric, op, value = match.groups()
    if metric not in GATED:
        raise InputError(f"--fail-if {text!r}: no metric {metric!r}; known: {', '.join(GATED)}")
    return Condition(metric, op, float(value))


def gate(run_figures: Mapping[str, Any], conditions: Sequence[Condition],
         baseline: Mapping[str, Any] | None, tolerance: float) -> list[str]:
    """Why a run fails its gate (nothing: it passes). A condition on a figure that was not
    measured fails: the owner asked for it."""
    failures = []
    for c in conditions:
        value = run_figures.get(c.metric)
        if value is None:
            failures.append(f"{c}: {c.metric} was not measured")
        elif _OPS[c.op](float(value), c.value):
            failures.append(f"{c}: {c.metric} is {value:g}")
    if baseline is not None:
        for metric in (*HIGHER, "unanswerable_answered"):
            now, then = run_figures.get(metric), baseline.get(metric)
            if now is None or then is None:
                continue
            worse = (then - now) if metric in HIGHER else (now - then)
            if worse > tolerance + 1e-9:
                failures.append(f"{metric} {then:g} -> {now:g}: worse than the baseline by "
                                f"{worse:.4g} (tolerance {tolerance:g})")
    return failures


def regressions(rows: Sequence[Mapping[str, Any]],
                baseline_rows: Sequence[Mapping[str, Any]], moved: float = MOVED) -> list[str]:
    """Questions that got worse than in the baseline: right there (outcome and every
    fact) and wrong now, or an answer further from its reference by more than ``moved``
    (token F1 or similarity)."""
    def right(r: Mapping[str, Any]) -> bool:
        return bool(r["correct_outcome"]) and all(r.get("facts_found") or [True])

    before = {r["id"]: r for r in baseline_rows}
    found = []
    for r in rows:
        then = before.get(r["id"])
        if then is None:
            continue
        if right(then) and not right(r):
            found.append(f"{r['id']}: {then['outcome']} -> {r['outcome']}")
            continue
        for metric in ("token_f1", "similarity"):
            a, b = then.get(metric), r.get(metric)
            if a is not None and b is not None and a - b > moved:
                found.append(f"{r['id']}: {metric} {a:g} -> {b:g}")
                break
    return found
