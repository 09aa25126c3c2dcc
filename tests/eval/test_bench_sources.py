"""`enclave bench sources` on a folder and an intranet site of 20 memos each: the three
syncs' counts are what they must be and every figure is there. No timing assertions: the
machine is noisy."""

from __future__ import annotations

from core.jobs import ITEM_DONE, UNCHANGED
from core.ports import Embedder
from eval.bench_sources import SYNCS, bench_sources, memo


def test_bench_sources_syncs_a_folder_and_a_site_three_times(real_embedder: Embedder) -> None:
    result = bench_sources(20, ["folder", "web"], embedder=real_embedder)
    assert result["ok"] and list(result["kinds"]) == ["folder", "web"]
    for kind, run in result["kinds"].items():
        assert run["first"]["counts"] == {ITEM_DONE: 20}, kind
        assert run["unchanged"]["counts"] == {UNCHANGED: 20}, kind
        assert run["changed"]["counts"] == {ITEM_DONE: 10, UNCHANGED: 10}, kind
        assert all(run["checks"].values()), (kind, run["checks"])
        for sync in SYNCS:
            assert run[sync]["error"] is None, (kind, sync)
            assert run[sync]["seconds"] > 0 and run[sync]["documents_per_s"] > 0, (kind, sync)
        assert 0 < run["unchanged_vs_first"]


def test_memos_are_distinct_and_a_revision_changes_one() -> None:
    texts = {memo(n)[1] for n in range(1000)}
    assert len(texts) == 1000
    assert memo(3, 1) != memo(3) and memo(3) == memo(3)
