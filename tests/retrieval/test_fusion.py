"""Min-max convex fusion against hand-computed scores, and through the searcher on both stores."""

from __future__ import annotations

import pytest

from core.types import Chunk, Hit
from retrieval.fusion import convex, normalised


def _hit(cid: str, score: float) -> Hit:
    return Hit(Chunk(cid, "d-" + cid, "v1", cid, None, None, 0, len(cid)), score)


def test_scores_are_mapped_onto_zero_to_one_per_ranking() -> None:
    three = [_hit("a", 0.9), _hit("b", 0.6), _hit("c", 0.3)]
    assert normalised(three, 50) == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0})
    assert normalised([_hit("a", 7.0), _hit("b", 7.0)], 50) == {"a": 1.0, "b": 1.0}
    assert normalised([], 50) == {}


def test_the_window_fixes_the_scale_whatever_the_depth() -> None:
    deep = [_hit(str(n), 10.0 - n) for n in range(10)]
    # The 3rd best maps to 0, and everything below it too: as if only 3 were fetched.
    assert normalised(deep, 3) == pytest.approx(
        {"0": 1.0, "1": 0.5} | {str(n): 0.0 for n in range(2, 10)})
    assert normalised(deep[:3], 3) == pytest.approx({"0": 1.0, "1": 0.5, "2": 0.0})
    other = [_hit(str(n), float(n)) for n in range(19, 9, -1)]

    def scored(hits: list[Hit]) -> list[tuple[str, float]]:
        return [(h.chunk.chunk_id, h.score) for h in hits if h.score > 0]

    # Whatever lies below both windows scores 0: the scored top is the same at any depth.
    assert scored(convex(deep, other, 0.5, 3)) == scored(convex(deep[:3], other[:3], 0.5, 3))
    assert [c for c, _ in scored(convex(deep, other, 0.5, 3))] == ["0", "19", "1", "18"]


def test_the_convex_combination_by_hand() -> None:
    dense = [_hit("a", 0.80), _hit("b", 0.70), _hit("c", 0.40)]  # a 1, b 0.75, c 0
    sparse = [_hit("c", 12.0), _hit("d", 9.0), _hit("a", 4.0)]   # c 1, d 0.625, a 0
    fused = convex(dense, sparse, dense_weight=0.6, window=50)
    # a: .6*1 = .6; b: .6*.75 = .45; c: .4*1 = .4; d: .4*.625 = .25
    assert [h.chunk.chunk_id for h in fused] == ["a", "b", "c", "d"]
    assert [h.score for h in fused] == pytest.approx([0.6, 0.45, 0.4, 0.25])
    # The weight moves the balance: sparse-heavy puts c first.
    assert [h.chunk.chunk_id for h in convex(dense, sparse, 0.2, 50)][:2] == ["c", "d"]


def test_one_side_empty_is_the_other_side_alone() -> None:
    dense = [_hit("a", 0.5), _hit("b", 0.4)]
    assert [h.chunk.chunk_id for h in convex(dense, [], 0.5, 50)] == ["a", "b"]
    assert [h.chunk.chunk_id for h in convex([], dense, 0.5, 50)] == ["a", "b"]
    assert convex([], [], 0.5, 50) == []


def test_ties_keep_the_dense_order_first() -> None:
    dense = [_hit("a", 1.0), _hit("b", 0.0)]
    sparse = [_hit("b", 1.0), _hit("a", 0.0)]
    assert [h.chunk.chunk_id for h in convex(dense, sparse, 0.5, 50)] == ["a", "b"]
