"""A change of embedder re-embeds on the next ingest instead of mixing vector spaces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.container import Container
from core.ports import Embedder
from core.settings import Settings
from core.types import Principal

ANYONE = Principal("anyone")


@pytest.fixture
def data(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def int8(data: Settings, real_embedder: Embedder) -> Iterator[Container]:
    c = Container(data, embedder=real_embedder)
    yield c
    c.close()


def test_each_version_records_its_embedder_and_a_change_re_embeds(
    int8: Container, data: Settings, samples: dict[str, Path], fp32_embedder: Embedder
) -> None:
    first = int8.ingestor.ingest([samples["public"]])
    assert first.count("ingested") == 6
    assert int8.registry.embedders() == {int8.embedder.fingerprint: 6}
    assert int8.embedder.fingerprint.startswith("onnx-int8/all-MiniLM-L6-v2/")
    chunks = int8.store.count()
    int8.close()

    fp32 = Container(data, embedder=fp32_embedder)
    try:
        handbook = samples["public"] / "handbook.md"
        # One file with the other embedder: a mix, which the registry shows.
        one = fp32.ingestor.ingest([handbook])
        assert [f.status for f in one.files] == ["ingested"]
        assert fp32.registry.embedders() == {"onnx-int8/all-MiniLM-L6-v2/int8-v1": 5,
                                             "sentence-transformers/all-MiniLM-L6-v2": 1}
        # The rest: re-embedded in place, same bytes, same version, same chunks.
        before = {d.doc_id: (d.active_version, d.chunk_count) for d in fp32.registry.documents()}
        rest = fp32.ingestor.ingest([samples["public"]])
        assert rest.count("ingested") == 5 and rest.count("unchanged") == 1
        after = {d.doc_id: (d.active_version, d.chunk_count) for d in fp32.registry.documents()}
        assert after == before
        assert fp32.registry.embedders() == {"sentence-transformers/all-MiniLM-L6-v2": 6}
        assert fp32.store.count() == chunks
        assert fp32.ingestor.check() == []
        # The vectors are the new embedder's: its own query finds the passage with a score
        # that only the same space gives (cosine of near-identical text close to 1).
        hits = fp32.searcher.search("How many days of paid leave do employees get?", ANYONE, 1)
        assert "28 days" in hits[0].chunk.text
        again = fp32.ingestor.ingest([samples["public"]])
        assert again.count("unchanged") == 6
    finally:
        fp32.close()


def test_versions_written_before_the_embedder_was_recorded_are_re_embedded(
    int8: Container, samples: dict[str, Path]
) -> None:
    int8.ingestor.ingest([samples["public"]])
    from sqlalchemy import update

    from core.registry import VersionRow

    with int8.registry.db.session() as s:
        s.execute(update(VersionRow).values(embedder=None))
    assert int8.registry.embedders() == {None: 6}
    report = int8.ingestor.ingest([samples["public"]])
    assert report.count("ingested") == 6
    assert int8.registry.embedders() == {int8.embedder.fingerprint: 6}
    assert int8.ingestor.check() == []


def test_status_shows_a_mix_of_embedders(
    int8: Container, data: Settings, samples: dict[str, Path], fp32_embedder: Embedder,
    cli_env: dict[str, str],
) -> None:
    import json
    import subprocess

    from tests.conftest import ENCLAVE

    int8.ingestor.ingest([samples["public"]])
    int8.close()
    fp32 = Container(data, embedder=fp32_embedder)
    fp32.ingestor.ingest([samples["public"] / "handbook.md"])
    fp32.close()
    env = {**cli_env, "ENCLAVE_DATA_DIR": str(data.resolved_data_dir)}
    shown = subprocess.run([str(ENCLAVE), "status", "--json"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    figures = json.loads(shown.stdout)
    assert figures["embedder"] == "onnx-int8/all-MiniLM-L6-v2/int8-v1"  # the default
    assert figures["embedded_by"] == {"onnx-int8/all-MiniLM-L6-v2/int8-v1": 5,
                                      "sentence-transformers/all-MiniLM-L6-v2": 1}
    text = subprocess.run([str(ENCLAVE), "status"], env=env, capture_output=True, text=True,
                          timeout=120).stdout
    assert "embedded:  5 documents by onnx-int8/all-MiniLM-L6-v2/int8-v1" in text
    assert ("MIXED:     1 documents embedded by sentence-transformers/all-MiniLM-L6-v2"
            in text), text
