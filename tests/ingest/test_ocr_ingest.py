"""Scans through the real pipeline: hostile and broken images fail alone with their reasons
while the rest ingest, and a long scan stopped by the per-document time limit leaves no
Tesseract behind and holds up nothing."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.container import Container
from core.jobs import DONE, FAILED
from core.ports import Embedder
from core.settings import Settings
from ingest.jobs import JobRunner
from tests.ingest import ocr_files
from tests.ingest.ocr_files import text_image
from tests.ingest.test_jobs import RecordingQueue


@pytest.fixture
def container(tmp_path: Path, real_embedder: Embedder):  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "data", jobs={"mode": "inline"},
                        ocr={"workers": 2})
    c = Container(settings, embedder=real_embedder)
    yield c
    c.close()


def test_bad_images_fail_alone_with_reasons(container: Container, tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    page = text_image(["Minutes of the Tallinn board meeting", "Budget approved unanimously"])
    ocr_files.save(page, folder / "minutes.png")
    ocr_files.pdf(folder / "scan.pdf", [([], text_image(["Signed Riga lease"], size_in=(8.5, 11)))])
    ocr_files.png_bomb(folder / "bomb.png")
    ocr_files.truncated(ocr_files.save(page.convert("RGB"), folder / "cut.jpg"), 0.3)
    (folder / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    report = container.ingestor.ingest([folder])
    outcome = {Path(f.source).name: f for f in report.files}
    assert outcome["minutes.png"].status == "ingested" and outcome["minutes.png"].ocr_pages == 1
    assert outcome["scan.pdf"].status == "ingested" and outcome["scan.pdf"].pages == 1
    assert (outcome["bomb.png"].reason or "").startswith("too large: ")
    assert (outcome["cut.jpg"].reason or "").startswith("corrupt: ")
    assert (outcome["photo.heic"].reason or "").startswith("corrupt: ")
    for f in report.failed:
        assert "\n" not in (f.reason or "")
    info = container.registry.find_by_source(outcome["minutes.png"].source)
    assert info is not None and [p.page for p in info.ocr_pages] == [1]
    assert info.ocr_pages[0].confidence is not None and info.low_confidence(60.0) == ()
    assert [p.page for p in info.low_confidence(99.9)] == [1]


class _Deadline(Exception):
    """Stands in for Celery's SoftTimeLimitExceeded, which the worker passes as a timeout."""


def test_a_long_scan_stops_at_the_time_limit_and_holds_up_nothing(
    container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mark = f"ocr-job-{uuid.uuid4().hex}"
    monkeypatch.setenv("ENCLAVE_TEST_MARK", mark)
    share = tmp_path / "share"
    share.mkdir()
    rng = np.random.default_rng(5)
    noise = [Image.fromarray((rng.random((2200, 1700)) > 0.5).astype(np.uint8) * 255, "L")
             for _ in range(4)]
    # Four pages of dots: about 20 s of OCR, far past the limit below.
    ocr_files.pdf(share / "a-long-scan.pdf", [([], n) for n in noise])
    (share / "b-note.md").write_text("# Note\n\nThe boiler is serviced in October.\n", "utf-8")
    queue = RecordingQueue()
    runner = JobRunner(container.settings.jobs, container.jobs, queue, lambda: container.ingestor,
                       timeouts=(_Deadline,))
    job = runner.submit([share])
    runner.plan(job.job_id)
    items = {Path(container.jobs.item(i).source).name: i for i in queue.items}  # type: ignore[union-attr]

    def strike(*_: object) -> None:
        raise _Deadline()

    previous = signal.signal(signal.SIGALRM, strike)
    signal.setitimer(signal.ITIMER_REAL, 3.0)  # the per-document soft limit, scaled down
    started = time.perf_counter()
    try:
        runner.run_item(items["a-long-scan.pdf"])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.perf_counter() - started < 6
    scan = container.jobs.item(items["a-long-scan.pdf"])
    assert scan is not None and scan.status == FAILED
    assert (scan.reason or "").startswith("took longer than the time limit")
    time.sleep(0.2)
    assert ocr_files.marked_processes(mark) == [], "Tesseract outlived the document's time limit"

    runner.run_item(items["b-note.md"])
    note = container.jobs.item(items["b-note.md"])
    assert note is not None and note.status == DONE
    assert container.jobs.get(job.job_id).status == "done"
