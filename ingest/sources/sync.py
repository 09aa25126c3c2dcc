"""A source's sync as an ingestion job: list, compare, fetch what changed, delete what left.

Planning lists the source through its connector and records every entry with its
signals. An entry whose signals match those of its last successful ingest becomes an
``unchanged`` item at once, without a byte fetched; a new or changed one becomes a
pending item, which a worker fetches into scratch and ingests like any file. Entries
synced before and no longer listed are deleted from enclave, but only after a complete
listing: a source that cannot be listed whole (down, wrong credentials, a folder that
cannot be read) deletes nothing, and the job says why.

A change of permissions alone (same content, new readers) re-reads the entry and finds
its version active already: its groups change in the store, nothing is embedded again.
An entry whose vectors came from another embedder than today's is fetched again however
its signals read, and re-embedded (ingest/pipeline.py).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.errors import NotFound, SourceError, UnreadableFile, one_line
from core.jobs import DELETED, PENDING, UNCHANGED
from core.settings import Settings
from core.sources import Source, SourceBook
from core.types import make_doc_id
from ingest.discover import Found
from ingest.sources.base import Connector, Entry, Fetched

log = logging.getLogger(__name__)

Row = tuple[str, str | None, str, str | None]
# How long a worker keeps a source's connection open between items of a sync.
_IDLE_S = 60.0


def open_connector(source: Source, settings: Settings) -> Connector:
    """The connector for ``source``, opened with its credentials."""
    max_bytes = int(settings.ingest.max_file_mb * 1024 * 1024)
    options = dict(source.options)
    match source.kind:
        case "folder":
            from ingest.roots import AllowedRoots
            from ingest.sources.folder import FolderConnector

            # A link in the folder that leads out of the allowed roots is not followed.
            return FolderConnector(source.location, include=source.include,
                                   exclude=source.exclude, private=[settings.resolved_data_dir],
                                   allowed=AllowedRoots(settings.jobs.allowed_roots).allowed)
        case "web":
            from ingest.sources.web import WebConnector

            return WebConnector(source.location, include=source.include, exclude=source.exclude,
                                max_bytes=max_bytes, username=source.username,
                                password=source.secret(), **options)
        case "imap":
            from ingest.sources.imap import ImapConnector

            return ImapConnector(source.location, username=source.username or "",
                                 password=source.secret() or "", include=source.include,
                                 exclude=source.exclude, max_bytes=max_bytes, **options)
        case "smb":
            from ingest.sources.smb import SmbConnector

            return SmbConnector(source.location, username=source.username or "",
                                password=source.secret() or "", include=source.include,
                                exclude=source.exclude, max_bytes=max_bytes, **options)
    raise SourceError(f"unknown source kind {source.kind!r}")


def plan_source(
    book: SourceBook, source: Source, job_id: str, connector: Connector,
    add: Callable[[list[Row]], None], delete: Callable[[str], bool], batch: int = 500,
    reembed: frozenset[str] = frozenset(),
) -> str | None:
    """Items for what the source holds now; returns the job's error, None when all went well.

    ``reembed``: doc ids whose vectors another embedder made: pending even if unchanged."""
    synced = book.entries(source.name)
    listed: set[str] = set()
    rows: list[Row] = []
    records: list[tuple[str, str, str, str, dict[str, Any]]] = []

    def flush() -> None:
        book.list_entries(source.name, job_id, records)
        add(rows)
        rows.clear()
        records.clear()

    try:
        for entry in connector.entries():
            if entry.key in listed:
                continue
            listed.add(entry.key)
            signal = f"{entry.signal}|{entry.access_signal}"
            doc_id = make_doc_id(entry.location)
            records.append((entry.key, entry.location, doc_id, signal, _stored(entry)))
            before = synced.get(entry.key)
            if (before is not None and before[1] == signal and before[0] == entry.location
                    and doc_id not in reembed):
                rows.append((entry.location, doc_id, UNCHANGED, None))
            else:
                rows.append((entry.location, doc_id, PENDING, None))
            if len(rows) >= batch:
                flush()
    except SourceError as exc:
        flush()
        return f"nothing deleted: {one_line(exc)}"
    flush()
    gone = [key for key in synced if key not in listed]
    deleted: list[Row] = []
    for key in gone:
        location = synced[key][0]
        doc_id = make_doc_id(location)
        if delete(doc_id):
            deleted.append((location, doc_id, DELETED, "gone from the source"))
    book.forget(source.name, gone)
    add(deleted)
    return None


def found_entry(book: SourceBook, source: Source, location: str) -> tuple[Entry, str]:
    """The entry a sync item names, and its listed signal."""
    stored = book.entry(source.name, location)
    if stored is None:
        raise UnreadableFile("no longer listed by its source")
    data, signal = stored
    data["principals"] = tuple(data.get("principals") or ())
    return Entry(**data), signal


def as_found(entry: Entry, fetched: Fetched) -> Found:
    return Found(path=Path(entry.location), resolved=fetched.path, display=entry.display,
                 source=entry.location, meta=tuple(sorted(entry.meta.items())))


def _stored(entry: Entry) -> dict[str, Any]:
    data = asdict(entry)
    data["meta"] = dict(entry.meta)
    data["principals"] = list(entry.principals)
    return data


class Connections:
    """The connectors a worker holds open, one per source, reused by the items of one sync
    and closed after a minute unused (an SMB or IMAP logon costs more than a small file).
    Each sync logs on anew: a password changed or revoked since is noticed at once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # source name -> (connector, last used, what it was opened for, the sync's job id)
        self._open: dict[str, tuple[Connector, float, str, str]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def connector(self, source: Source, job_id: str) -> Iterator[Connector]:
        # Another sync, or a source edited since (location, credentials), logs on anew.
        version = repr((job_id, source.location, source.username, source.credentials,
                        source.options))
        with self._lock:
            self._close_idle()
            held = self._open.pop(source.name, None)
        if held is not None and held[2] != version:
            _close(held[0])
            held = None
        connector = held[0] if held else open_connector(source, self.settings)
        try:
            yield connector
        except SourceError:
            _close(connector)  # a broken connection is not handed to the next item
            raise
        with self._lock:
            self._open[source.name] = (connector, time.monotonic(), version, job_id)

    def _close_idle(self) -> None:
        now = time.monotonic()
        for name, (connector, used, _, _) in list(self._open.items()):
            if now - used > _IDLE_S:
                del self._open[name]
                _close(connector)

    def release(self, job_id: str) -> None:
        """Close what the sync ``job_id`` opened here: it is over."""
        with self._lock:
            done = [name for name, held in self._open.items() if held[3] == job_id]
            closing = [self._open.pop(name)[0] for name in done]
        for connector in closing:
            _close(connector)

    def close(self) -> None:
        with self._lock:
            held, self._open = self._open, {}
        for connector, _, _, _ in held.values():
            _close(connector)


def _close(connector: Connector) -> None:
    try:
        connector.close()
    except Exception:  # closing a dead connection may fail; it is gone either way
        log.debug("closing a source connection failed", exc_info=True)


@contextmanager
def fetch_folder(scratch: Path) -> Iterator[Path]:
    """A folder of its own under ``scratch`` for one fetched entry, removed afterwards."""
    scratch.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="fetch-", dir=scratch))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def deleter(ingestor_delete: Callable[[str], object]) -> Callable[[str], bool]:
    def delete(doc_id: str) -> bool:
        try:
            ingestor_delete(doc_id)
        except NotFound:
            return False
        return True
    return delete
