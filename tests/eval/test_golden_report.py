"""The golden report: self-contained, escaped, deterministic, and it says what changed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import lxml.html
import pytest

from core.eval_runs import EvalRun
from eval.golden_report import render_report

HOSTILE = "<script>alert(1)</script>"
STARTED = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)


def _result(qid: str, outcome: str, *, answerable: bool = True, answer: str = "",
            cited: tuple[str, ...] = ("doc-1",), token_f1: float = 0.6,
            precision: float = 1.0) -> dict[str, Any]:
    return {"id": qid, "question": f"What about {qid}?", "answerable": answerable,
            "outcome": outcome, "correct_outcome": (outcome == "answered") == answerable,
            "answer": answer or f"The answer to {qid} [1].", "cited": list(cited),
            "citation_precision": precision, "citation_recall": 1.0, "facts": ["a fact"],
            "facts_found": [True], "token_f1": token_f1, "similarity": 0.8, "seconds": 1.2,
            "prompt_tokens": 900, "completion_tokens": 40, "audit_id": f"audit-{qid}",
            "error": None}


def _figures(precision: float, p50: float) -> dict[str, Any]:
    return {"questions": 4, "expected_answer": 3, "expected_none": 1, "errors": 0,
            "answerable_answered": 2 / 3, "answerable_not_found": 1 / 3,
            "answerable_unverified": 0.0, "unanswerable_answered": 0.0,
            "unanswerable_not_found": 1.0, "unanswerable_unverified": 0.0,
            "outcome_accuracy": 0.75, "citation_precision": precision, "citation_recall": 0.9,
            "facts_recall": 0.5, "token_f1": 0.41, "similarity": None,  # None: shown as a dash
            "latency_p50_s": p50, "latency_p95_s": p50 * 2, "prompt_tokens": 912.5,
            "completion_tokens": 41.0, "seconds": 20.0}


def _run(config: str, run_id: str, status: str = "done", *, figures: dict[str, Any] | None = None,
         results: tuple[dict[str, Any], ...] = (), reason: str | None = None,
         minutes: int = 0) -> EvalRun:
    started = STARTED + timedelta(minutes=minutes)
    return EvalRun(run_id=run_id, batch_id="batch-1", golden="golden/hr-policies.jsonl",
                   golden_sha256="ab" * 32, config=config, status=status, reason=reason,
                   settings={"answer": {"model": config}, "retrieval": {"k": 8}},
                   figures=figures or {}, created_by="alice@example.org", started_at=started,
                   finished_at=started + timedelta(seconds=20), results=results)


@pytest.fixture(scope="module")
def runs() -> tuple[EvalRun, EvalRun, EvalRun, EvalRun]:
    baseline = _run("smollm2", "base0000-1111", figures=_figures(1.0, 1.0), results=(
        _result("q1", "answered"), _result("q2", "not_found"),
        _result("q3", "not_found", answerable=False), _result("q4", "answered")), minutes=-60)
    vllm = _run("vllm-qwen", "aaaa1111-2222", figures=_figures(0.5, 0.8), results=(
        _result("q1", "answered"), _result("q2", "answered", answer=HOSTILE),  # changed
        _result("q3", "not_found", answerable=False), _result("q4", "answered"),
        _result("q5", "answered")))  # q5 is new
    small = _run("small", "bbbb3333-4444", figures=_figures(1.0, 1.5), results=(
        _result("q1", "not_found"), _result("q2", "not_found"),
        _result("q3", "not_found", answerable=False), _result("q4", "answered")), minutes=1)
    failed = _run("remote-gpu", "cccc5555-6666", "failed", minutes=2,
                  reason="endpoint http://gpu:8000/v1 unreachable <connection refused>")
    return baseline, vllm, small, failed


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser.tags


def _text(fragment: str) -> str:
    return " ".join(lxml.html.fromstring(fragment).text_content().split())


def test_side_by_side_with_plots_and_nothing_external(runs: tuple[EvalRun, ...]) -> None:
    _, vllm, small, failed = runs
    page = render_report([vllm, small, failed])

    doc = lxml.html.fromstring(page)
    assert doc.tag == "html" and doc.find(".//title").text == "enclave evaluation"
    tags = _tags(page)
    assert sum(tag == "svg" for tag, _ in tags) == 3  # failed run skipped, plots drawn once each
    assert not any(tag in {"script", "link", "iframe", "object", "embed", "img"} for tag, _ in tags)
    for _, attrs in tags:
        for name, value in attrs.items():
            if name in {"src", "href", "xlink:href", "srcset", "action"}:
                assert (value or "").startswith("#"), (name, value)
    assert "@import" not in page and "url(http" not in page
    assert "<script" not in page.lower()

    text = _text(page)
    assert "hr-policies.jsonl" in text and "abababababab" in text and "alice@example.org" in text
    assert "2025-03-04 09:30:00 UTC" in text
    assert "Configurations side by side" in text
    # the failed run's reason, escaped, in the table; its column has no figures
    assert "endpoint http://gpu:8000/v1 unreachable &lt;connection refused&gt;" in page
    assert "50.0%" in text and "100.0%" in text and "66.7%" in text and "0.80 s" in text
    # two done runs and no baseline: outcomes across configurations; q5 only one run asked
    across = doc.find_class("across")[0]
    flagged = [row.find("td").text_content() for row in across.find_class("disagree")]
    assert flagged == ["q1", "q2", "q5"]
    assert "3 of 5 questions get different outcomes" in text
    assert "Against the baseline" not in text


def test_against_the_baseline(runs: tuple[EvalRun, ...]) -> None:
    baseline, vllm, _, failed = runs
    page = render_report([vllm, failed], baseline, title="HR policies <nightly>")

    assert HOSTILE not in page and "<script" not in page.lower()
    assert html_escaped(HOSTILE) in page
    assert "<title>HR policies &lt;nightly&gt;</title>" in page
    doc = lxml.html.fromstring(page)
    text = " ".join(doc.text_content().split())
    assert "Against the baseline" in text
    assert "Per question, across configurations" not in text
    # citation precision 100% -> 50%: minus fifty percentage points, marked worse
    rows = {" ".join(cell.text_content().strip() for cell in tr) for tr in doc.iter("tr")}
    assert "citation precision 100.0% 50.0% -50.0 pp" in rows
    assert "latency p50 1.00 s 0.80 s -0.20 s" in rows
    assert any("worse" in (td.get("class") or "") and "-50.0" in td.text_content()
               for td in doc.iter("td"))

    changes = doc.find_class("changes")
    assert len(changes) == 1  # the failed run has nothing to compare
    listed = {tr.find("td").text_content(): " ".join(tr.text_content().split())
              for tr in changes[0].iter("tr") if tr.find("td") is not None}
    assert set(listed) == {"q2", "q5"}  # q1, q3, q4 did not change
    assert "not_found ✗ → answered ✓" in listed["q2"] and "outcome, correctness" in listed["q2"]
    assert "added" in listed["q5"]
    assert HOSTILE in listed["q2"]  # shown to the reader as text, never run
    assert sum(tag == "svg" for tag, _ in _tags(page)) == 3


def test_question_changes_by_citations_scores_and_removal() -> None:
    base = _run("a", "base-9999", figures=_figures(1.0, 1.0), results=(
        _result("q1", "answered"), _result("q2", "answered"), _result("q3", "answered"),
        _result("q4", "answered", answer="x" * 1000)))
    new = _run("b", "next-9999", figures=_figures(1.0, 1.0), results=(
        _result("q1", "answered", cited=("doc-2",)), _result("q2", "answered", token_f1=0.9),
        _result("q4", "answered", answer="y" * 1000, token_f1=0.65)))
    doc = lxml.html.fromstring(render_report([new], base))
    listed = {tr.find("td").text_content(): " ".join(tr.text_content().split())
              for tr in doc.find_class("changes")[0].iter("tr") if tr.find("td") is not None}
    assert set(listed) == {"q1", "q2", "q3"}  # q4's F1 moved by only 0.05
    assert "citations" in listed["q1"] and "token F1 +0.30" in listed["q2"]
    assert "removed" in listed["q3"]


def test_truncates_answers() -> None:
    base = _run("a", "base-9999", figures=_figures(1.0, 1.0),
                results=(_result("q1", "not_found", answer="x" * 1000),))
    new = _run("b", "next-9999", figures=_figures(1.0, 1.0),
               results=(_result("q1", "answered", answer="y" * 1000),))
    page = render_report([new], base)
    assert "y" * 300 + "…" in page and "y" * 301 not in page


def test_nothing_to_plot_and_missing_figures() -> None:
    failed = _run("remote", "dead-0000", "failed", reason="no route to host")
    sparse = _run("bare", "bare-0000", "done", figures={"questions": 2})
    page = render_report([failed])
    assert "nothing to plot" in page and "<svg" not in page and "no route to host" in page
    page = render_report([sparse, failed])
    assert page.count("<svg") == 3 and "–" in page  # missing keys drawn as gaps, shown as dashes
    assert "No runs to report" in render_report([])


def test_deterministic(runs: tuple[EvalRun, ...]) -> None:
    baseline, vllm, small, failed = runs
    first = render_report([vllm, small, failed], baseline)
    assert first == render_report([vllm, small, failed], baseline)
    assert re.search(r'id="g1-', first)  # ids scoped per plot, so the three never collide
    ids = re.findall(r'\bid="([^"]+)"', first)
    assert len(ids) == len(set(ids))


def html_escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
