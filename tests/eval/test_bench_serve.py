"""`enclave bench search`'s rows for serve beside a worker (figures, not goals: the
latency goal is measured at 100k chunks and stated in the README)."""

from __future__ import annotations

from eval.bench import bench_search


def test_bench_search_times_serve_idle_and_beside_a_writing_worker() -> None:
    figures = bench_search(chunks=2000, queries=20, serve=True, write_pause_s=0.3)
    for name in ("serve_idle_search", "serve_writing_search", "serve_per_operation_search",
                 "serve_idle_request", "writer_session"):
        p50, p95 = figures[f"{name}_p50_ms"], figures[f"{name}_p95_ms"]
        assert 0 < p50 <= p95, name
    # Searches through serve found no error, idle, while the writer wrote, or opened per search.
    assert figures["serve_idle_errors"] == figures["serve_writing_errors"] == 0
    assert figures["serve_per_operation_errors"] == 0
    # The writer wrote all along, and serve never kept it out for long.
    assert figures["writer_documents"] >= 2 and figures["writer_errors"] == 0
    assert figures["writer_wait_max_ms"] < 30_000
