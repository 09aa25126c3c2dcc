"""A file rewritten while it is ingested: its version and its text come from the same bytes.

A writer thread keeps swapping a file between two contents while it is ingested again and
again; after each run the chunks in the store must be the text of the content whose hash
the registry holds as active. The CLI (Ingestor.ingest) and inline jobs are covered here;
Celery workers run the very same ``Ingestor.ingest_one`` (workers.tasks -> JobRunner.run_item),
so they are covered by the job case.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.container import Container
from core.jobs import DONE, UNCHANGED
from core.ports import Embedder
from core.settings import Settings
from core.types import make_chunk_id
from ingest.snapshot import clean_stale

# The same length, so an in-place rewrite never leaves a shorter or longer file behind.
TEXTS = (
    b"# Harbor\n\nThe harbor gate opens at dawn for the amberwolf crews only.\n",
    b"# Harbor\n\nThe harbor gate opens at dawn for the bluefinch crews only.\n",
)
assert len(TEXTS[0]) == len(TEXTS[1])


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _contents() -> dict[str, bytes]:
    """Every content the file can hold, by hash: either text, or (a read that met a write
    halfway through its copy) the start of one and the rest of the other."""
    a, b = TEXTS
    mixes = [x[:k] + y[k:] for x, y in ((a, b), (b, a)) for k in range(len(a) + 1)]
    return {_sha(c): c for c in mixes}


class Swapper(threading.Thread):
    """Rewrites the file in place (same inode, no truncation) as fast as it can."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.writes = 0

    def run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY)
        try:
            while not self.stop.is_set():
                os.pwrite(fd, TEXTS[self.writes % 2], 0)
                self.writes += 1
        finally:
            os.close(fd)

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=30)


@pytest.fixture
def swapped(tmp_path: Path) -> Iterator[tuple[Path, Swapper]]:
    path = tmp_path / "docs" / "harbor.md"
    path.parent.mkdir()
    path.write_bytes(TEXTS[0])
    writer = Swapper(path)
    writer.start()
    yield path, writer
    writer.finish()


def _check_consistent(c: Container, path: Path) -> None:
    """The active version's chunks hold the text of the content with that very hash."""
    info = c.registry.find_by_source(str(path.resolve()))
    assert info is not None and info.active_version is not None, info
    contents = _contents()
    assert info.active_version in contents, "registered a hash of no content the file held"
    assert c.store.versions_of(info.doc_id) == {info.active_version}
    ids = [make_chunk_id(info.doc_id, info.active_version, n) for n in range(info.chunk_count)]
    stored = " ".join(chunk.text for chunk in c.store.retrieve(ids))
    sentence = contents[info.active_version].decode().splitlines()[-1]
    assert sentence in stored, (sentence, stored)


def _scratch_is_empty(c: Container) -> bool:
    scratch = c.settings.resolved_data_dir / "scratch"
    return not scratch.exists() or not any(scratch.iterdir())


def test_cli_ingest_of_a_file_rewritten_meanwhile_indexes_what_it_registers(
    container: Container, swapped: tuple[Path, Swapper]
) -> None:
    path, writer = swapped
    ingested = 0
    # At least 12 rounds, and more until two of them caught different contents: with two
    # texts swapped as fast as possible, a dozen reads can (rarely) all catch the same one.
    for n in range(60):
        report = container.ingestor.ingest([path])
        assert report.count("failed") == 0, report.failed
        ingested += report.count("ingested")
        _check_consistent(container, path)
        if n >= 11 and ingested >= 2:
            break
    assert writer.writes > 100 and ingested >= 2  # the race really ran
    writer.finish()

    final = path.read_bytes()
    report = container.ingestor.ingest([path])
    assert report.files[0].status in ("ingested", "unchanged")
    info = container.registry.find_by_source(str(path.resolve()))
    assert info is not None and info.active_version == _sha(final)
    _check_consistent(container, path)
    assert _scratch_is_empty(container)


def test_inline_job_of_a_file_rewritten_meanwhile_indexes_what_it_registers(
    tmp_path: Path, real_embedder: Embedder, swapped: tuple[Path, Swapper]
) -> None:
    path, writer = swapped
    c = Container(Settings(data_dir=tmp_path / "data", jobs={"mode": "inline"}),
                  embedder=real_embedder)
    try:
        runner = c.job_runner()
        for _ in range(12):
            job = runner.submit([path])
            assert job.counts[DONE] + job.counts[UNCHANGED] == 1, c.jobs.items(job.job_id)
            _check_consistent(c, path)
        writer.finish()

        final = path.read_bytes()
        job = runner.submit([path])
        assert job.counts[DONE] + job.counts[UNCHANGED] == 1
        info = c.registry.find_by_source(str(path.resolve()))
        assert info is not None and info.active_version == _sha(final)
        _check_consistent(c, path)
        assert _scratch_is_empty(c)
    finally:
        c.close()


def test_copies_go_whatever_happens_and_old_leftovers_at_start(
    tmp_path: Path, real_embedder: Embedder
) -> None:
    settings = Settings(data_dir=tmp_path / "data", ingest={"max_file_mb": 0.001})
    scratch = settings.resolved_data_dir / "scratch"
    old, young = scratch / "old-run", scratch / "live-run"
    for folder in (old, young):
        folder.mkdir(parents=True)
        (folder / "left.txt").write_text("left behind by a killed worker")
    day_ago = time.time() - 25 * 3600
    os.utime(old, (day_ago, day_ago))

    c = Container(settings, embedder=real_embedder)
    try:
        c.ingestor  # noqa: B018 - starting up cleans the scratch folder
        assert sorted(p.name for p in scratch.iterdir()) == ["live-run"]

        docs = tmp_path / "docs"
        docs.mkdir()
        (docs / "good.txt").write_text("The kestrel archive opens on Mondays.")
        (docs / "broken.docx").write_bytes(b"not a zip archive at all")
        (docs / "big.txt").write_text("too long a line " * 100)
        report = c.ingestor.ingest([docs])
        by_name = {Path(f.source).name: f for f in report.files}
        assert by_name["good.txt"].status == "ingested"
        assert (by_name["big.txt"].reason or "").startswith("too large:")
        broken = by_name["broken.docx"].reason or ""
        assert broken.startswith("corrupt:") and str(scratch) not in broken
        assert sorted(p.name for p in scratch.iterdir()) == ["live-run"]
    finally:
        c.close()


def test_clean_stale_of_a_missing_folder_is_nothing(tmp_path: Path) -> None:
    assert clean_stale(tmp_path / "never-made") == 0
