"""The answer-quality harness: its scoring against hand-computed cases, its loading of ClapNQ."""

from __future__ import annotations

from core.types import Answer, Citation, SentenceCheck
from eval.answers import Question, load, score
from tests.conftest import shared


def _answer(refused: bool, sources: list[str], supported: list[bool]) -> Answer:
    citations = tuple(
        Citation(n, "c", "d", "v", f"/tmp/corpus/{s}", None, "q", 0, 1, True)
        for n, s in enumerate(sources, 1)
    )
    checks = tuple(SentenceCheck("s", (), ok, 0.5, False, ok) for ok in supported)
    return Answer("text", citations, refused, "m", {}, checks)


def test_score_matches_hand_computed_figures() -> None:
    a1 = Question("1", "q1", True, frozenset({"1.md"}))
    a2 = Question("2", "q2", True, frozenset({"2.md", "2b.md"}))
    a3 = Question("3", "q3", True, frozenset({"3.md"}))
    u1 = Question("4", "q4", False, frozenset({"4.md"}))
    u2 = Question("5", "q5", False, frozenset({"5.md"}))
    rows = [
        (a1, _answer(False, ["1.md", "9.md"], [True, False]), 1.0),  # 1 of 2 citations on gold
        (a2, _answer(False, ["2b.md"], [True]), 2.0),  # an identical copy counts as gold
        (a3, _answer(True, ["3.md"], []), 3.0),  # refused: its citations do not count
        (u1, _answer(True, [], [False]), 4.0),
        (u2, _answer(False, ["4.md"], [True]), 5.0),
    ]
    figures = score(rows)
    assert figures["answered_pct"] == 66.7
    assert figures["citation_precision"] == round(2 / 3, 3)
    assert figures["unanswerable_refused_pct"] == 50.0
    # Sentences of every answer that was generated: 2+1 answered, 1 refused after checking, 1.
    assert figures["sentences_checked"] == 5 and figures["supported_sentence_pct"] == 60.0
    assert figures["seconds_p50"] == 3.0 and 4.8 <= figures["seconds_p95"] <= 5.0


def test_load_pools_both_files_and_maps_each_question_to_its_passage() -> None:
    questions, corpus = load(shared("clapnq"))
    assert sum(q.answerable for q in questions) == 150 and len(questions) == 300
    assert all(q.gold <= set(corpus) for q in questions)
    first = questions[0]
    assert corpus[f"{first.qid}.md"].startswith("# ")
    # ClapNQ repeats a few passages across questions: identical copies are all gold.
    assert any(len(q.gold) > 1 for q in questions)
