"""The benchmarks run end to end on small inputs. No timing assertions: the machine is noisy."""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from eval.bench import bench_ingest, bench_search


def test_bench_search_reports_ordered_positive_latencies():
    figures = bench_search(chunks=2000, queries=20)
    assert figures["chunks"] == 2000
    for name in ("e2e", "store", "unindexed_e2e", "reopened_e2e"):
        p50, p95 = figures[f"{name}_p50_ms"], figures[f"{name}_p95_ms"]
        assert 0 < p50 <= p95
    # The access filter let something through, so the figures time real work.
    assert figures["hits_mean"] > 0
    assert figures["load_points_per_s"] > 0


def test_bench_ingest_counts_files_and_chunks(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "travel.md").write_text(
        "# Travel policy\n\nHotels are booked through the travel desk. The limit per night "
        "is 180 euros in capitals and 120 euros elsewhere.\n\n## Meals\n\nMeals are "
        "reimbursed up to 40 euros a day with receipts.\n"
    )
    (docs / "backup.txt").write_text(
        "Backups run nightly at 02:00. Each backup is kept for thirty days and restored "
        "once a quarter to prove that it works.\n"
    )
    runs = bench_ingest([docs], ["previous", "default"])["runs"]
    assert [r["profile"] for r in runs] == ["previous", "default"]
    # Before issue 22 against today's defaults.
    assert [(r["embedding"], r["pdf_text"], r["parse_ahead"]) for r in runs] == [
        ("sentence-transformers", "pdfminer", 0), ("onnx-int8", Settings().ingest.pdf_text, 2)]
    for figures in runs:
        assert figures["files"] == 2
        assert figures["failed"] == 0
        assert figures["chunks"] > 0
        assert figures["total_s"] > 0 and figures["embed_chunks_per_s"] > 0
    # The same files chunk alike under both: the tokenizer is the same model's.
    assert runs[0]["chunks"] == runs[1]["chunks"]
    # Speed-ups, the baseline's seconds over the run's (the same files either way).
    assert runs[0]["ratio_vs_first"]["embed"] == 1.0
    assert runs[1]["ratio_vs_first"]["embed"] == round(runs[0]["embed_s"] / runs[1]["embed_s"], 2)
    assert runs[1]["ratio_vs_first"]["total"] == round(runs[0]["total_s"] / runs[1]["total_s"], 2)
