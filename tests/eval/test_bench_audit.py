"""`enclave bench audit` runs end to end on both databases and prints its figures."""

from __future__ import annotations

import pytest

from eval.bench_audit import bench_audit
from tests.conftest import PG_ADMIN


@pytest.mark.parametrize("postgres", [None, PG_ADMIN], ids=["sqlite", "postgresql"])
def test_bench_audit_measures_appends_and_verify(postgres: str | None) -> None:
    result = bench_audit(postgres, records=40, writers=2)
    assert result["database"] == ("sqlite" if postgres is None else "postgresql+psycopg")
    # The sealed chain holds the single writer's 40, the two writers' 20 each and the
    # checkpoints written on the way (the first append's, at least), unbroken and sealed.
    assert result["checkpoints"] >= 1
    assert result["verify_records"] == 80 + result["checkpoints"] == result["verify_sealed"]
    assert result["verify_intact"] is True
    assert result["appends_per_s"] > 0 and result["plain_inserts_per_s"] > 0
    assert 0 < result["append_p50_ms"] <= result["append_p95_ms"]
    # Unsealed and sealed, measured in the same run.
    assert 0 < result["sealed_append_p50_ms"] <= result["sealed_append_p95_ms"]
    assert result["sealed_vs_unsealed_p50"] == pytest.approx(
        result["sealed_append_p50_ms"] / result["append_p50_ms"], rel=0.05)
