"""Run ingestion jobs: submit, walk folders into items, ingest items, cancel, retry, recover.

The runner is the same whichever queue carries the work: Celery workers
(:mod:`workers.tasks` call :meth:`JobRunner.plan` and :meth:`JobRunner.run_item` by id)
or this process (:class:`InlineQueue`). State lives in the database (:mod:`core.jobs`);
a message only says "look at job J" or "look at item N", so a duplicate or redelivered
message finds the item finished, or running elsewhere, and does nothing.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import closing, contextmanager
from dataclasses import replace
from pathlib import Path, PurePath

from core.errors import (
    AccessDenied,
    BackendError,
    ConfigError,
    DocumentError,
    InputError,
    NotFound,
    SourceError,
    SyncRunning,
    one_line,
)
from core.jobs import (
    CANCELLED,
    DELETED,
    FAILED,
    ITEM_CANCELLED,
    ITEM_DONE,
    PENDING,
    UNCHANGED,
    Item,
    Job,
    JobBook,
)
from core.names import validate_groups
from core.ports import JobQueue
from core.settings import JobsSettings, Settings
from core.sources import SourceBook, source_of_job
from core.types import MEMBER_SEPARATOR, make_doc_id
from ingest.discover import OUTSIDE, Found, discover
from ingest.pipeline import FileResult, Ingestor, StageTimes, Status
from ingest.roots import AllowedRoots, checked
from ingest.sources.base import Entry
from ingest.sources.sync import (
    Connections,
    as_found,
    deleter,
    fetch_folder,
    found_entry,
    open_connector,
    plan_source,
)

log = logging.getLogger(__name__)


class DocumentBusy(BackendError):
    """Another worker is ingesting the same document right now; try again shortly."""


class JobRunner:
    def __init__(
        self,
        settings: JobsSettings,
        book: JobBook,
        queue: JobQueue,
        ingestor: Callable[[], Ingestor],
        *,
        worker: str | None = None,
        timeouts: tuple[type[BaseException], ...] = (),
        upload_dir: Path | None = None,
        private: Sequence[Path] = (),
        sources: SourceBook | None = None,
        connections: Connections | None = None,
    ) -> None:
        self.settings = settings
        self.book = book
        self.queue = queue
        self._ingestor = ingestor
        self.worker = worker or f"{os.uname().nodename}:{os.getpid()}"
        # Exceptions that mean "this document took too long" (Celery's soft time limit).
        self.timeouts = timeouts
        # Uploads to the admin API land in upload_dir; always readable by their jobs.
        self.roots = AllowedRoots(settings.allowed_roots, upload_dir)
        # Folders never walked: enclave's own data folder (ingest.discover).
        self.private = tuple(private)
        # Sources synced as jobs (ingest/sources), and the connections workers keep open.
        self.sources = sources
        self.connections = connections

    # -- admin actions -------------------------------------------------------------------------

    def submit(
        self, paths: Sequence[str | Path], groups: Sequence[str] = (), *, sync: bool = False,
        owner: str = "admin", require_roots: bool = False,
    ) -> Job:
        """Record a job and queue its planning. ``require_roots``: refuse every path unless
        allowed roots are configured (the admin API; the CLI's user has the shell anyway)."""
        acl = validate_groups(groups)
        if not paths:
            raise InputError("name at least one file or folder")
        named = [checked(Path(p)) for p in paths]
        if require_roots and not self.roots.configured and not self.roots.uploads_only(named):
            raise AccessDenied(
                "this server reads no folders: set ENCLAVE_JOBS__ALLOWED_ROOTS, or upload the files"
            )
        sources = [str(self.confine(p)) for p in named]
        if sync and not all(Path(s).is_dir() for s in sources):
            raise InputError("--sync works on folders: it removes documents whose files are gone")
        return self._start(self.book.create(owner, sources, acl, sync))

    def _start(self, job_id: str) -> Job:
        """Queue a recorded job's planning; a job the broker refuses is abandoned at once."""
        try:
            self.queue.send_plan(job_id)
        except BackendError as exc:
            # Not left for a worker to find later: the admin was told it failed.
            self.book.abandon(job_id, f"not started: {one_line(exc)}")
            raise
        return self.book.get(job_id)

    def confine(self, path: Path) -> Path:
        """The real path, if it lies inside an allowed root (any, when none are configured)."""
        return self.roots.confine(path)

    def sync_source(self, name: str, owner: str = "admin") -> Job:
        """Start a sync of the source ``name``: a job of its own. SyncRunning when a sync
        of it is running already (one at a time per source)."""
        book = self._source_book()
        source = book.get(name)
        if source.job_id and not self.book.is_finished(source.job_id):
            raise SyncRunning(f"source {name} is being synced by job {source.job_id}; "
                              "wait for it to finish")
        job_id = self.book.create(owner, [source.job_source], (), True)
        try:
            book.claim(name, job_id)  # the check above raced another sync: one wins
        except SyncRunning:
            self.book.abandon(job_id, "not started: another sync of the source started first")
            raise
        return self._start(job_id)

    def sync_due(self, owner: str = "schedule") -> list[Job]:
        """Start the syncs whose schedule says they are due (cron, or Celery beat)."""
        started = []
        for name in self._source_book().due():
            try:
                started.append(self.sync_source(name, owner))
            except SyncRunning:
                continue  # still running from its last turn: it is not due twice
        return started

    def _source_book(self) -> SourceBook:
        if self.sources is None:
            raise ConfigError("this runner was built without sources")
        return self.sources

    def allowed(self, resolved: Path) -> bool:
        """Whether a real (symlink-resolved) path may be read: inside a root, or no roots set."""
        return self.roots.allowed(resolved)

    def cancel(self, job_id: str) -> Job:
        cancelled = self.book.cancel(job_id)
        log.info("job %s cancelled: %d items will not run", job_id, cancelled)
        return self.book.get(job_id)

    def retry(self, job_id: str) -> Job:
        job = self.book.get(job_id)
        if job.status == "cancelled":
            raise InputError(f"job {job_id} was cancelled; submit a new job instead")
        if self.book.retry(job_id):
            self.dispatch(job_id)
        return self.book.get(job_id)

    # -- planning: folders into items ------------------------------------------------------------

    def plan(self, job_id: str) -> None:
        if not self.book.claim_planning(job_id, self.settings.stale_after_s):
            return  # planned already, or another worker is walking it right now
        try:
            self._plan(job_id)
        except BaseException:
            self.book.release_planning(job_id)
            raise

    def _plan(self, job_id: str) -> None:
        job = self.book.get(job_id)
        name = source_of_job(job.sources)
        if name is not None:
            error = self._plan_source(job, name)
            self.book.set_planned(job_id, error)
            self.dispatch(job_id)
            self.book.finish_if_complete(job_id)
            return
        unlisted: list[str] = []
        batch: list[tuple[str, str | None, str, str | None]] = []
        # Links that lead out of the roots are not walked: one item each, target unnamed.
        for found in discover((Path(s) for s in job.sources), self.allowed, self.private):
            batch.append(self._item_row(found, unlisted))
            if len(batch) >= self.settings.plan_batch:
                self._add(job_id, batch)
                batch = []
                if self.book.is_cancelled(job_id):
                    return
        self._add(job_id, batch)
        error = None
        if job.sync:
            error = self._sync_deletions(job, unlisted)
        self.book.set_planned(job_id, error)
        self.dispatch(job_id)
        self.book.finish_if_complete(job_id)

    def _item_row(self, found: Found, unlisted: list[str]) -> tuple[str, str | None, str, str | None]:
        if found.resolved is None:
            source = str(found.path.absolute())
            if found.problem == OUTSIDE:
                return source, None, FAILED, OUTSIDE
            if found.problem and found.problem.startswith("cannot list folder"):
                unlisted.append(source)
            return source, make_doc_id(source), FAILED, found.reason
        source = str(found.resolved)
        return source, make_doc_id(source), PENDING, None

    def _add(self, job_id: str, batch: list[tuple[str, str | None, str, str | None]]) -> None:
        self.book.add_items(job_id, batch)
        self.book.beat_planning(job_id)
        self.dispatch(job_id)

    def _sync_deletions(self, job: Job, unlisted: list[str]) -> str | None:
        if unlisted:
            # A folder that could not be listed looks like a folder whose files are gone.
            return (f"nothing deleted: {len(unlisted)} folder(s) could not be listed, "
                    f"e.g. {unlisted[0]}")
        ingestor = self._ingestor()
        for folder in job.sources:
            for doc_id, source in self.book.missing_sources(job.job_id, folder):
                try:
                    ingestor.delete_id(doc_id)
                except NotFound:
                    continue
                self.book.add_items(job.job_id, [(source, doc_id, DELETED, "the file is gone")])
        return None

    def _plan_source(self, job: Job, name: str) -> str | None:
        book = self._source_book()
        try:
            source = book.get(name)
        except NotFound:
            return "the source was removed"
        try:
            # Opened for this listing alone: the items log on again (once per worker).
            ingestor = self._ingestor()
            with closing(open_connector(source, self._settings())) as connector:
                return plan_source(
                    book, source, job.job_id, connector,
                    add=lambda rows: self._add(job.job_id, rows),
                    delete=deleter(ingestor.delete_id),
                    batch=self.settings.plan_batch,
                    reembed=ingestor.registry.embedded_otherwise(ingestor.embedder.fingerprint))
        except SourceError as exc:  # could not even be opened: wrong credentials, down
            return f"nothing deleted: {one_line(exc)}"
        except (BackendError, DocumentError):
            raise
        except Exception as exc:  # a bug or an option a connector refuses: said on the job
            log.exception("listing source %s failed", name)
            return f"nothing deleted: the source could not be listed: {one_line(exc)}"

    def _connections(self) -> Connections:
        if self.connections is None:
            raise ConfigError("this runner was built without source connections")
        return self.connections

    def _settings(self) -> Settings:
        return self._connections().settings

    def dispatch(self, job_id: str) -> None:
        taken = self.book.take_pending(job_id, self.settings.window)
        for n, item_id in enumerate(taken):
            try:
                self.queue.send_item(item_id)
            except BackendError:
                self.book.unsent(taken[n:])  # the next dispatch sends them
                raise

    # -- one item --------------------------------------------------------------------------------

    def run_item(self, item_id: int) -> Item | None:
        """Ingest one item; None when it is not this worker's to run (done, or running elsewhere).

        Raises BackendError for a transient failure: the caller retries later.
        """
        item = self.book.claim(item_id, self.worker, self.settings.stale_after_s)
        if item is None:
            return None
        try:
            self._run_claimed(item)
        finally:
            self.dispatch(item.job_id)
            if self.book.finish_if_complete(item.job_id) and self.connections is not None:
                # A sync's last item: its connection is not kept open on the server.
                self.connections.release(item.job_id)
        return self.book.item(item_id)

    def _run_claimed(self, item: Item) -> None:
        if item.attempts > self.settings.max_attempts:
            self.book.dead_letter(
                item.item_id,
                f"gave up after {item.attempts - 1} attempts: the worker was lost each time "
                f"(killed, out of memory, or over the hard time limit of "
                f"{self.settings.time_limit_s:g} s)",
            )
            return
        job = self.book.get_light(item.job_id)  # one read: its status and its groups
        if job.status == CANCELLED:
            self.book.finish(item.item_id, ITEM_CANCELLED, "the job was cancelled")
            return
        if self.book.others_running(item, self.settings.stale_after_s):
            raise DocumentBusy(f"{item.source} is being ingested by another job")
        name = source_of_job(job.sources)
        listed: list[str] = []  # the signal of the source entry fetched
        work = (functools.partial(self._source_entry, item, name, listed) if name is not None
                else functools.partial(self._file, item, job))
        results = self._guarded(item, work)
        if results is None:
            return  # finished already, with its reason
        result = _outcome(item.source, results)
        status = {"ingested": ITEM_DONE, "updated": ITEM_DONE, "unchanged": UNCHANGED}.get(
            result.status, FAILED)
        self.book.finish(item.item_id, status, result.reason, doc_id=result.doc_id,
                         chunks=result.chunks, pages=result.pages)
        log.info("item %s of job %s: %s, %d chunks", item.item_id, item.job_id, result.status,
                 result.chunks, extra={"item_id": item.item_id, "job_id": item.job_id,
                                       "outcome": result.status, "chunks": result.chunks})
        if name is not None:
            self._synced(item, name, listed[0] if status != FAILED and listed else None)

    def _guarded(self, item: Item, work: Callable[[], list[FileResult] | None]
                 ) -> list[FileResult] | None:
        """``work``'s results, its heartbeat beating; None when the item was finished
        here (failed, timed out) or by ``work`` itself. BackendError propagates: retry."""
        try:
            with self._heartbeat(item.item_id):
                return work()
        except BackendError:
            raise
        except self.timeouts:
            self._timed_out(item.item_id)
        except (DocumentError, SourceError, NotFound) as exc:
            reason = str(exc) if isinstance(exc, DocumentError) else one_line(exc)
            if isinstance(exc, SourceError):
                reason = f"source unavailable: {reason}"
            self.book.finish(item.item_id, FAILED, reason)
        except Exception as exc:
            if _caused_by(exc, self.timeouts):
                # The time limit struck inside a library that wrapped it in its own error.
                self._timed_out(item.item_id)
                return None
            log.exception("item %s (%s) failed unexpectedly", item.item_id, item.source)
            self.book.finish(item.item_id, FAILED, f"internal error: {one_line(exc)}")
        return None

    def _file(self, item: Item, job: Job) -> list[FileResult] | None:
        """A file of a folder or an upload, read where it lies."""
        found = next(iter(discover([Path(item.source)], self.allowed, self.private)), None)
        if found is None or (found.resolved and found.resolved.is_dir()):
            self.book.finish(item.item_id, FAILED, "unreadable: no longer a file")
            return None
        if found.problem == OUTSIDE:  # it became such a link since it was planned
            self.book.finish(item.item_id, FAILED, OUTSIDE)
            return None
        found = replace(found, display=_display(item.source, job.sources))
        ingestor = self._ingestor()
        ingestor.repair(item.doc_id or make_doc_id(str(found.resolved or found.path)))
        return ingestor.ingest_found(found, tuple(job.groups), StageTimes())

    def _source_entry(self, item: Item, name: str, listed: list[str]) -> list[FileResult] | None:
        """An entry of a source, fetched into scratch and ingested with the groups its
        readers map to; ``listed`` gets the signal it was listed with."""
        book = self._source_book()
        source = book.get(name)
        entry, signal = found_entry(book, source, item.source)
        listed.append(signal)
        ingestor = self._ingestor()
        ingestor.repair(item.doc_id or make_doc_id(item.source))
        with self._connections().connector(source, item.job_id) as connector, \
                fetch_folder(ingestor.scratch) as folder:
            fetched = connector.fetch(entry, folder)
            acl = source.groups_for(fetched.principals or entry.principals)
            if acl is None:
                self._unmapped(item, entry, ingestor.delete_id)
                return None
            return ingestor.ingest_found(as_found(entry, fetched), acl, StageTimes())

    def _synced(self, item: Item, name: str, signal: str | None) -> None:
        """Record the entry as in enclave at the signal it was listed with (None: it is not)."""
        if signal is not None:
            self._source_book().synced(name, item.source, signal)

    def _unmapped(self, item: Item, entry: Entry, delete: Callable[[str], object]) -> None:
        """Readers none of whom maps to an enclave group: readable by no one here. What was
        ingested of it before leaves (its access was revoked at the source)."""
        readers = ", ".join(entry.principals) or "none"
        removed = deleter(delete)(make_doc_id(item.source))
        self.book.finish(item.item_id, DELETED if removed else FAILED,
                         f"unmapped: none of its readers ({readers}) maps to an enclave group")

    def _timed_out(self, item_id: int) -> None:
        self.book.finish(item_id, FAILED,
                         f"took longer than the time limit of {self.settings.soft_time_limit_s:g} s")

    @contextmanager
    def _heartbeat(self, item_id: int) -> Iterator[None]:
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.settings.heartbeat_s):
                try:
                    self.book.beat(item_id)
                except Exception:  # the next beat tries again; the run goes on
                    log.warning("heartbeat of item %s failed", item_id, exc_info=True)

        thread = threading.Thread(target=beat, name=f"heartbeat-{item_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    # -- recovery --------------------------------------------------------------------------------

    def recover(self) -> int:
        """Queue again what lost its worker (silent heartbeats); returns how many it sent."""
        sent = 0
        for item_id in self.book.lost_items(self.settings.stale_after_s):
            self.queue.send_item(item_id)
            sent += 1
        # A broker that restarted without persistence forgets its messages; a duplicate of
        # one it still holds is harmless (the item is claimed once).
        for item_id in self.book.long_queued(max(self.settings.time_limit_s,
                                                 10 * self.settings.stale_after_s)):
            self.queue.send_item(item_id)
            sent += 1
        for job_id in self.book.lost_plans(self.settings.stale_after_s):
            self.queue.send_plan(job_id)
            sent += 1
        for job_id in self.book.active_jobs():
            self.dispatch(job_id)
            self.book.finish_if_complete(job_id)
        if sent:
            log.warning("recovered %d items or plans whose worker was lost", sent)
        return sent


class InlineQueue:
    """Runs job work in this process: embedded installs with no broker, and tests.

    Sends only record the work; :meth:`drain` runs it (a send from inside a run waits its
    turn rather than recursing). Plans run in the draining thread, in order; items run in
    up to ``workers`` threads at once, so that one document is parsed while another is
    embedded, as two worker processes would.
    """

    def __init__(self, workers: int = 1) -> None:
        self.runner: JobRunner | None = None
        self.workers = workers
        self._work: deque[tuple[str, str | int]] = deque()
        self._draining = False

    def send_plan(self, job_id: str) -> None:
        self._work.append(("plan", job_id))
        self.drain()

    def send_item(self, item_id: int) -> None:
        self._work.append(("item", item_id))
        self.drain()

    def drain(self) -> None:
        if self._draining or self.runner is None:
            return
        self._draining = True
        running: set[Future[None]] = set()
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="enclave-item") as pool:
                while self._work or running:
                    while self._work and len(running) < self.workers:
                        kind, ref = self._work.popleft()
                        if kind == "plan":
                            self.runner.plan(str(ref))
                        else:
                            running.add(pool.submit(contextvars.copy_context().run,
                                                    self._run_item, int(ref)))
                    if running:
                        # Until an item ends, or briefly: a running item may send more.
                        if not (self._work and len(running) < self.workers):
                            wait(running, timeout=0.05, return_when=FIRST_COMPLETED)
                        for future in {f for f in running if f.done()}:
                            running.discard(future)
                            future.result()
        finally:
            self._draining = False

    def _run_item(self, item_id: int) -> None:
        assert self.runner is not None
        try:
            self.runner.run_item(item_id)
        except BackendError as exc:
            # No broker to retry later: the item fails with the reason; `retry` reruns it.
            self.runner.book.finish(item_id, FAILED, f"unavailable: {one_line(exc)}")


def _outcome(source: str, results: list[FileResult]) -> FileResult:
    """One item's outcome: its file's, or for an archive, all its members' together.

    An archive is one item (expanded once, by one worker, under one time limit); each
    member is a document of its own in the registry, where `enclave status` lists those
    that failed. The item says how many failed and the first one's reason.
    """
    if len(results) == 1 and results[0].source == source:
        return results[0]  # a file, or an archive that failed as a whole
    failed = [r for r in results if r.status == "failed"]
    status: Status = ("failed" if len(failed) == len(results)
                      else "ingested" if any(r.status in ("ingested", "updated") for r in results)
                      else "unchanged")
    reason = None
    if failed:
        first = failed[0]
        reason = (f"{len(failed)} of {len(results)} archive members failed, "
                  f"e.g. {first.source[len(source) + len(MEMBER_SEPARATOR):]}: {first.reason}")
    pages = [r.pages for r in results if r.pages]
    return FileResult(source, status, make_doc_id(source), sum(r.chunks for r in results),
                      sum(pages) if pages else None, reason)


def _display(source: str, job_sources: Sequence[str]) -> str | None:
    """The item's path relative to the job source it was found in (None: its file name)."""
    path = PurePath(source)
    for folder in job_sources:
        if path != PurePath(folder) and path.is_relative_to(folder):
            return path.relative_to(folder).as_posix()
    return None


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether ``exc`` is, or was raised while handling, one of ``kinds``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and kinds:
        if isinstance(current, kinds):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
