"""The job runner's logic, run in this process (inline queue) on the real pipeline and SQLite.

Real workers are tested in tests/workers; here: planning, the window, sync, confinement
to the allowed roots, and giving up on a document whose worker keeps getting lost.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from core.container import Container
from core.errors import AccessDenied, BackendError, InputError, NotFound
from core.jobs import DELETED, DONE, FAILED, PENDING, QUEUED, UNCHANGED
from core.ports import Embedder
from core.settings import Settings
from core.types import Chunk, make_chunk_id
from ingest.discover import OUTSIDE
from ingest.jobs import JobRunner
from tests.workers.conftest import write_texts


class RecordingQueue:
    """Keeps what was sent, runs nothing: shows what a broker would hold."""

    def __init__(self) -> None:
        self.plans: list[str] = []
        self.items: list[int] = []
        self.down = False

    def send_plan(self, job_id: str) -> None:
        self.plans.append(job_id)

    def send_item(self, item_id: int) -> None:
        if self.down:
            raise BackendError("broker unreachable")
        self.items.append(item_id)


@pytest.fixture
def inline(tmp_path: Path, real_embedder: Embedder):  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "data", jobs={"mode": "inline"})
    c = Container(settings, embedder=real_embedder)
    yield c
    c.close()


def _recording(c: Container, **jobs: object) -> tuple[JobRunner, RecordingQueue]:
    queue = RecordingQueue()
    settings = c.settings.jobs.model_copy(update=jobs)
    return JobRunner(settings, c.jobs, queue, lambda: c.ingestor), queue


def test_a_large_folder_is_planned_in_batches_and_only_a_window_is_queued(
    inline: Container, tmp_path: Path
) -> None:
    write_texts(tmp_path / "share", 30)
    runner, queue = _recording(inline, window=3, plan_batch=7)
    job = runner.submit([tmp_path / "share"])
    assert queue.plans == [job.job_id] and queue.items == []

    runner.plan(job.job_id)
    job = inline.jobs.get(job.job_id)
    assert job.planned and job.total == 30
    assert len(queue.items) == 3  # the rest waits in the database, not in the broker
    assert (job.counts[QUEUED], job.counts[PENDING]) == (3, 27)

    runner.plan(job.job_id)  # a redelivered planning message adds nothing
    assert inline.jobs.get(job.job_id).total == 30

    runner.run_item(queue.items[0])
    assert len(queue.items) == 4  # one finished, one more let in
    assert runner.run_item(queue.items[0]) is None  # a duplicate delivery does nothing


def test_inline_job_sync_removes_documents_whose_files_are_gone(
    inline: Container, tmp_path: Path
) -> None:
    share = tmp_path / "share"
    files = write_texts(share, 3)
    runner = inline.job_runner()
    first = runner.submit([share], ["legal"])
    assert first.status == "done" and first.counts[DONE] == 3

    files[0].unlink()
    write_texts(share, 1, prefix="new")
    second = runner.submit([share], ["legal"], sync=True)

    assert second.counts == {**second.counts, DONE: 1, UNCHANGED: 2, DELETED: 1}
    deleted = inline.jobs.items(second.job_id, DELETED)
    assert [Path(i.source) for i in deleted] == [files[0].resolve()]
    assert inline.registry.find_by_source(str(files[0].resolve())) is None
    assert inline.ingestor.check() == []
    assert inline.registry.totals()["documents"] == 3


def test_sync_deletes_nothing_when_a_folder_cannot_be_listed(
    inline: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    share = tmp_path / "share"
    write_texts(share / "sub", 2)
    runner = inline.job_runner()
    runner.submit([share])
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        # root reads a chmod 000 folder anyway, so the refusal is simulated.
        if Path(path).name == "sub":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr("ingest.discover.os.scandir", scandir)
    job = runner.submit([share], sync=True)
    assert job.counts[DELETED] == 0 and "nothing deleted" in (job.error or "")
    assert inline.registry.totals()["documents"] == 2


def test_paths_outside_the_allowed_roots_are_refused(inline: Container, tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    write_texts(root, 2)
    write_texts(outside, 1, prefix="secret")
    write_texts(tmp_path / "outside2", 1, prefix="private")
    (root / "escape.txt").symlink_to(outside / "secret-000.txt")
    (root / "escape-dir").symlink_to(tmp_path / "outside2")
    runner, _ = _recording(inline, allowed_roots=[root])

    with pytest.raises(AccessDenied):
        runner.submit([outside])
    with pytest.raises(AccessDenied):
        runner.submit([root / ".." / "outside"])
    with pytest.raises(AccessDenied):
        runner.submit([root / "escape.txt"])  # a link out of the root
    with pytest.raises(NotFound):
        runner.submit([root / "missing"])
    with pytest.raises(InputError):
        runner.submit([Path("relative/path")])
    for named in (f"{root}/a\x00b", "/etc\x00/passwd"):  # the OS refuses NUL; so do we
        with pytest.raises(InputError, match="NUL byte"):
            runner.submit([named])
    with pytest.raises(AccessDenied) as missing:  # outside: no telling whether it exists
        runner.submit([outside / "no-such-file.txt"])
    with pytest.raises(AccessDenied) as present:
        runner.submit([outside / "secret-000.txt"])
    assert (str(missing.value).replace("no-such-file", "X")
            == str(present.value).replace("secret-000", "X"))

    job = runner.submit([root])
    runner.plan(job.job_id)
    items = {Path(i.source).name: i for i in inline.jobs.items(job.job_id)}
    for link in ("escape.txt", "escape-dir"):  # skipped, not walked, the target unnamed
        assert items[link].status == FAILED and items[link].reason == OUTSIDE
        assert items[link].source == str(root.resolve() / link) and items[link].doc_id is None
    assert "private-000.txt" not in items and "secret-000.txt" not in items
    assert all(i.status != FAILED for n, i in items.items() if n.startswith("memo"))


def test_a_job_names_documents_relative_to_its_sources(inline: Container, tmp_path: Path) -> None:
    share = tmp_path / "share"
    write_texts(share / "sub" / "deeper", 1)
    single = write_texts(tmp_path / "other", 1, prefix="note")[0]
    runner = inline.job_runner()
    job = runner.submit([share, single])
    assert job.counts[DONE] == 2
    expected = {share / "sub" / "deeper" / "memo-000.txt": "sub/deeper/memo-000.txt",
                single: "note-000.txt"}
    for path, display in expected.items():
        info = inline.registry.find_by_source(str(path.resolve()))
        assert info is not None and info.display_name == display
        assert {c.display for c in _chunks(inline, info.doc_id)} == {display}


def _chunks(c: Container, doc_id: str) -> list[Chunk]:
    info = c.registry.get(doc_id)
    assert info is not None and info.active_version is not None
    ids = [make_chunk_id(doc_id, info.active_version, n) for n in range(info.chunk_count)]
    return c.store.retrieve(ids)


def test_a_document_whose_worker_keeps_dying_is_dead_lettered(
    inline: Container, tmp_path: Path
) -> None:
    runner, queue = _recording(inline, max_attempts=2, stale_after_s=0.001)
    job = runner.submit(write_texts(tmp_path / "docs", 1))
    runner.plan(job.job_id)
    item_id = queue.items[0]
    for _ in range(2):  # claimed, then the worker "dies": its heartbeat goes silent
        time.sleep(0.01)  # older than stale_after_s (1 ms), on any clock resolution
        assert inline.jobs.claim(item_id, "doomed", 0.001) is not None
    time.sleep(0.01)
    runner.recover()
    assert queue.items.count(item_id) >= 2  # sent again for another worker

    runner.run_item(item_id)  # the third claim is over max_attempts
    item = inline.jobs.item(item_id)
    assert item is not None and item.status == FAILED
    assert (item.reason or "").startswith("gave up after 2 attempts")
    assert [d.item_id for d in inline.jobs.dead_letters(job.job_id)] == [item_id]
    assert inline.jobs.get(job.job_id).status == "done"


def test_items_the_broker_lost_or_refused_are_sent_again(inline: Container, tmp_path: Path) -> None:
    runner, queue = _recording(inline, window=2, stale_after_s=0.001, time_limit_s=0.002,
                               soft_time_limit_s=0.001)
    job = runner.submit(write_texts(tmp_path / "docs", 3))
    queue.down = True
    with pytest.raises(BackendError):
        runner.plan(job.job_id)
    assert inline.jobs.get(job.job_id).counts[PENDING] == 3  # none stranded as queued

    queue.down = False
    runner.plan(job.job_id)  # the planning message is redelivered
    assert len(queue.items) == 2
    time.sleep(0.05)  # longer than any message should wait here (10 x stale_after_s)
    runner.recover()  # the broker forgot them (a restart without persistence)
    assert sorted(queue.items) == sorted(queue.items[:2] * 2)


class _Deadline(Exception):
    """Stands in for Celery's SoftTimeLimitExceeded, which the worker passes as a timeout."""


def test_a_time_limit_wrapped_by_a_library_still_reads_as_the_time_limit(
    inline: Container, tmp_path: Path
) -> None:
    write_texts(tmp_path / "share", 1)

    class WrappingIngestor:
        """The limit strikes inside a library (llama-index's templates did) that re-raises
        it as its own error."""

        def repair(self, doc_id: str | None = None) -> int:
            return 0

        def ingest_found(self, *_: object) -> None:
            try:
                raise _Deadline()
            except _Deadline as exc:
                raise ValueError(f"Failed to parse template: {exc!r}") from exc

    queue = RecordingQueue()
    runner = JobRunner(inline.settings.jobs, inline.jobs, queue, WrappingIngestor,  # type: ignore[arg-type]
                       timeouts=(_Deadline,))
    job = runner.submit([tmp_path / "share"])
    runner.plan(job.job_id)
    runner.run_item(queue.items[0])
    item = inline.jobs.items(job.job_id)[0]
    assert (item.status, item.reason) == (FAILED, "took longer than the time limit of 600 s")


def test_enclave_own_data_folder_is_never_ingested(inline: Container, tmp_path: Path) -> None:
    # The data folder (tmp_path/"data": database, store, audit texts, keys) lies inside the
    # folder an admin names: its files must not become documents employees can search.
    write_texts(tmp_path / "share", 2)
    inline.ingestor.check()  # opens the database and the store, so their files exist
    assert [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    data = str((tmp_path / "data").resolve())

    job = inline.job_runner().submit([tmp_path])
    sources = [i.source for i in inline.jobs.items(job.job_id)]
    assert len(sources) == 2 and not any(s.startswith(data) for s in sources), sources

    report = inline.ingestor.ingest([tmp_path])
    assert [f.source for f in report.files if f.source.startswith(data)] == []
    assert inline.registry.totals()["documents"] == 2
