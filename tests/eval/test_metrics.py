"""Ranking metrics against cases computed by hand."""

from __future__ import annotations

import math

import pytest

from eval.metrics import evaluate, mrr_at, ndcg_at, recall_at


def test_ndcg_by_hand() -> None:
    # Relevant d2 (grade 1) at rank 2 and d4 (grade 2) at rank 4; ideal: d4 then d2.
    ranked = ["d1", "d2", "d3", "d4"]
    relevant = {"d2": 1, "d4": 2, "d9": 0}
    dcg = 1 / math.log2(3) + 2 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at(ranked, relevant, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at(ranked, relevant, 10) == pytest.approx(0.5672074)
    assert ndcg_at(["d4", "d2"], relevant, 10) == pytest.approx(1.0)
    assert ndcg_at(ranked, relevant, 1) == 0.0  # the cut-off applies to the ranking
    assert ndcg_at(["d1"], {"d1": 0}, 10) == 0.0  # nothing relevant: 0, not a division error
    # The ideal is cut at k too: 3 relevant, k = 2, both top places relevant -> 1.
    assert ndcg_at(["a", "b"], {"a": 1, "b": 1, "c": 1}, 2) == pytest.approx(1.0)


def test_recall_and_mrr_by_hand() -> None:
    relevant = {"a": 1, "b": 1, "c": 1, "z": 0}
    ranked = ["x", "a", "y", "b"]
    assert recall_at(ranked, relevant, 100) == pytest.approx(2 / 3)
    assert recall_at(ranked, relevant, 2) == pytest.approx(1 / 3)
    assert mrr_at(ranked, relevant, 10) == pytest.approx(0.5)
    assert mrr_at(ranked, relevant, 1) == 0.0
    assert mrr_at(["z", "x"], relevant, 10) == 0.0  # grade 0 is not relevant


def test_evaluate_averages_over_judged_queries() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}
    runs = {"q1": ["a"], "q2": ["x", "y"]}  # q2 misses; q3 has nothing relevant: not counted
    result = evaluate(runs, qrels)
    assert result == {"ndcg@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5, "queries": 2.0}
    assert evaluate({}, qrels)["ndcg@10"] == 0.0  # a query with no run scores 0
