"""Parsing ahead while embedding: order kept, overlap real, crashes and hangs fail alone."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.container import Container
from core.errors import ParseFailed
from core.ports import Embedder
from core.settings import Settings
from core.types import Principal
from ingest import pipeline
from ingest.overlap import on_abandon, prepared_ahead, within

ANYONE = Principal("anyone")


def test_prepared_ahead_keeps_order_and_runs_ahead_of_the_consumer() -> None:
    prepared: list[int] = []
    consumed_while: list[list[int]] = []

    def prepare(n: int) -> int:
        prepared.append(n)
        return n * 10

    results = []
    for item, result in prepared_ahead(range(6), prepare, ahead=2):
        time.sleep(0.05)  # a slow consumer: the thread fills its queue meanwhile
        consumed_while.append(list(prepared))
        results.append((item, result))
    assert results == [(n, n * 10) for n in range(6)]
    # While the first item was consumed, later ones were already prepared, but no more than
    # the queue (2) plus the one in hand and the one being put.
    assert 2 <= len(consumed_while[0]) <= 4


def test_a_failure_reaches_the_consumer_at_its_turn() -> None:
    def prepare(n: int) -> int:
        if n == 2:
            raise RuntimeError("boom")
        return n

    seen = []
    with pytest.raises(RuntimeError, match="boom"):
        for item, _ in prepared_ahead(range(5), prepare, ahead=2):
            seen.append(item)
    assert seen == [0, 1]


def test_a_failing_iteration_is_raised_and_an_early_stop_stops_the_thread() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise OSError("listing failed")

    with pytest.raises(OSError, match="listing failed"):
        list(prepared_ahead(items(), lambda n: n, ahead=1))

    prepared: list[int] = []
    for _ in prepared_ahead(range(1000), prepared.append, ahead=1):
        break
    time.sleep(0.3)
    assert len(prepared) < 10


def test_within_returns_raises_and_gives_up() -> None:
    assert within(5, lambda: 42) == 42
    with pytest.raises(ZeroDivisionError):
        within(5, lambda: 1 / 0)
    started = time.monotonic()
    with pytest.raises(ParseFailed, match=r"longer than 0\.2 s"):
        within(0.2, lambda: time.sleep(30))
    assert time.monotonic() - started < 5


class _Interrupt(Exception):
    """Stands in for Celery's soft time limit, which a signal raises in the main thread."""


def _stoppable(stops: list[str]) -> int:
    """Work that runs until the waiting thread gives up on it, as OCR's processes do."""
    stopped = threading.Event()
    with on_abandon(lambda: (stops.append("stopped"), stopped.set())):
        stopped.wait(30)
    return 0


def test_work_given_up_is_stopped_and_an_interruption_passes_through_unchanged() -> None:
    """The time limit strikes the thread that waits, not the parser's: its exception must
    reach the caller as itself (not as a parser crash) and stop the parser's work."""
    stops: list[str] = []
    with pytest.raises(ParseFailed):
        within(0.2, lambda: _stoppable(stops))
    assert stops == ["stopped"]

    def strike(*_: object) -> None:
        raise _Interrupt()

    previous = signal.signal(signal.SIGALRM, strike)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    started = time.monotonic()
    try:
        with pytest.raises(_Interrupt):
            within(30, lambda: _stoppable(stops))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert stops == ["stopped", "stopped"] and time.monotonic() - started < 5

    assert within(5, lambda: 7) == 7 and len(stops) == 2  # work that ends is not stopped


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    for name, text in {
        "a-leave.txt": "Employees get twenty-eight days of paid leave per year.",
        "b-crash.txt": "This one crashes its parser.",
        "c-hang.txt": "This one hangs its parser.",
        "d-badge.txt": "Visitors collect a badge from the front desk before entering.",
        "e-parking.txt": "The car park opens at seven in the morning on weekdays.",
    }.items():
        (root / name).write_text(text)
    return root


@pytest.mark.timeout(120)
def test_a_parser_that_crashes_or_hangs_fails_its_file_alone(
    tmp_path: Path, folder: Path, real_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_parse = pipeline.parse_file

    def parse(path: Path, **kwargs):  # type: ignore[no-untyped-def]
        if path.read_text().startswith("This one crashes"):
            raise RuntimeError("segfault-like surprise")
        if path.read_text().startswith("This one hangs"):
            time.sleep(90)
        return real_parse(path, **kwargs)

    real_parse(folder / "a-leave.txt", max_bytes=10**6, max_pages=10)  # imports (seconds)
    monkeypatch.setattr(pipeline, "parse_file", parse)
    settings = Settings(data_dir=tmp_path / "data", ingest={"parse_timeout_s": 8.0,
                                                            "parse_ahead": 2})
    c = Container(settings, embedder=real_embedder)
    try:
        started = time.monotonic()
        report = c.ingestor.ingest([folder])
        took = time.monotonic() - started
        outcome = {Path(f.source).name: f for f in report.files}
        assert [Path(f.source).name for f in report.files] == sorted(outcome)  # in order
        assert outcome["b-crash.txt"].status == "failed"
        assert "the parser crashed: segfault-like surprise" in (outcome["b-crash.txt"].reason or "")
        assert outcome["c-hang.txt"].status == "failed"
        assert "parsing took longer than 8 s" in (outcome["c-hang.txt"].reason or "")
        ingested = {n for n, f in outcome.items() if f.status == "ingested"}
        assert ingested == {"a-leave.txt", "d-badge.txt", "e-parking.txt"}, report.files
        assert took < 45  # the hung parser (90 s) was not waited for
        info = c.registry.find_by_source(str(folder / "c-hang.txt"))
        assert info is not None and "longer than 8 s" in (info.last_error or "")
        hits = c.searcher.search("when does the car park open", ANYONE, 1)
        assert "seven in the morning" in hits[0].chunk.text
        assert c.ingestor.check() == []
    finally:
        c.close()


def test_the_next_files_are_parsed_while_one_embeds(
    tmp_path: Path, folder: Path, real_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans: dict[str, list[tuple[float, float, str]]] = {"parse": [], "embed": []}
    real_parse = pipeline.parse_file

    def parse(path: Path, **kwargs):  # type: ignore[no-untyped-def]
        started = time.monotonic()
        try:
            return real_parse(path, **kwargs)
        finally:
            time.sleep(0.2)  # a parser as slow as a PDF's
            spans["parse"].append((started, time.monotonic(), threading.current_thread().name))

    class SlowEmbedder:
        def __init__(self, inner: Embedder) -> None:
            self.inner = inner
            self.name, self.dim, self.fingerprint = inner.name, inner.dim, inner.fingerprint
            self.tokenize = inner.tokenize

        def embed(self, texts):  # type: ignore[no-untyped-def]
            started = time.monotonic()
            try:
                return self.inner.embed(texts)
            finally:
                time.sleep(0.3)
                spans["embed"].append((started, time.monotonic(), threading.current_thread().name))

    monkeypatch.setattr(pipeline, "parse_file", parse)

    def run(ahead: int) -> float:
        spans["parse"].clear()
        spans["embed"].clear()
        settings = Settings(data_dir=tmp_path / f"data-{ahead}", ingest={"parse_ahead": ahead})
        c = Container(settings, embedder=SlowEmbedder(real_embedder))
        try:
            report = c.ingestor.ingest([folder])
            assert report.count("ingested") == 5
        finally:
            c.close()
        overlap = 0.0
        for p0, p1, _ in spans["parse"]:
            for e0, e1, _ in spans["embed"]:
                overlap += max(0.0, min(p1, e1) - max(p0, e0))
        return overlap

    assert run(0) == 0.0  # one at a time: never both
    assert run(2) > 0.3   # ahead: parsing ran while embedding did
    assert {name for *_, name in spans["parse"]} == {"enclave-parse"}
    assert {name for *_, name in spans["embed"]} == {"MainThread"}
