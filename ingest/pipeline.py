"""Ingest files: parse -> chunk -> embed -> store, one file at a time, each failing alone.

A file's outcome is ``ingested`` (new or changed), ``unchanged`` (same bytes, same
groups: nothing written), ``updated`` (same bytes, new groups) or ``failed`` with a
one-line reason. See :mod:`core.registry` for why the registry and the store agree
even when a run is killed midway, and :meth:`Ingestor.repair` for how the next run
puts things right.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from core import metrics
from core.errors import DocumentError, InputError, NotFound, StoreError, UnreadableFile
from core.ports import Embedder, SparseEncoder, StoredChunk, VectorStore
from core.registry import DocumentInfo, Registry
from core.settings import Settings
from core.types import Chunk, Document, ParsedDocument, make_doc_id
from ingest.chunk import SectionChunker
from ingest.discover import Found, discover
from ingest.parse import parse_file

log = logging.getLogger(__name__)

Status = Literal["ingested", "unchanged", "updated", "failed"]


@dataclass(frozen=True, slots=True)
class FileResult:
    source: str
    status: Status
    doc_id: str | None = None
    chunks: int = 0
    pages: int | None = None
    reason: str | None = None


@dataclass
class StageTimes:
    """Seconds spent in each stage, and what they produced (for ``enclave bench``)."""

    parse: float = 0.0
    chunk: float = 0.0
    embed: float = 0.0
    store: float = 0.0
    pages: int = 0
    chunks: int = 0
    files: int = 0


@dataclass
class IngestReport:
    files: list[FileResult] = field(default_factory=list)
    times: StageTimes = field(default_factory=StageTimes)
    repaired: int = 0

    def count(self, status: Status) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]


def validate_groups(groups: Sequence[str]) -> tuple[str, ...]:
    cleaned = []
    for group in groups:
        name = group.strip()
        if not name or name == "*" or any(c.isspace() for c in name):
            raise InputError(f"invalid group name {group!r}: no blanks, no spaces, not '*'")
        cleaned.append(name)
    return tuple(sorted(set(cleaned)))


class Ingestor:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        store: VectorStore,
        embedder: Embedder,
        sparse: SparseEncoder,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.embedder = embedder
        self.sparse = sparse
        self.chunker = SectionChunker(
            embedder.tokenize,
            max_tokens=settings.chunking.max_tokens,
            overlap_tokens=settings.chunking.overlap_tokens,
            title_max_tokens=settings.chunking.title_max_tokens,
        )
        self.store.ensure_collection(embedder.dim)

    # -- the run -----------------------------------------------------------------------------

    def ingest(
        self,
        paths: Iterable[Path],
        groups: Sequence[str] = (),
        on_file: Callable[[FileResult], None] | None = None,
        on_found: Callable[[Found], None] | None = None,
    ) -> IngestReport:
        acl = validate_groups(groups)
        report = IngestReport(repaired=self.repair())
        for found in discover(paths):
            if on_found:
                on_found(found)
            result = self.ingest_one(found, acl, report.times)
            report.files.append(result)
            if on_file:
                on_file(result)
        if report.count("ingested"):
            self.optimize(report.times)
        return report

    def optimize(self, times: StageTimes | None = None) -> None:
        """Index what was written (the embedded engine leaves that to us); counted as store time.

        Only at the end of a run that holds the store anyway (``enclave ingest``): indexing
        100k chunks takes about a minute on 2 cores, and workers sharing the embedded store
        with ``serve`` would lock searches out for that long (bench search: unindexed, 100k
        chunks cost 4 ms more per search).
        """
        started = time.perf_counter()
        try:
            self.store.optimize()
        except Exception:
            # Search still works, unindexed segments are only slower; the next run retries.
            log.warning("indexing the store failed; the next ingest retries", exc_info=True)
        if times is not None:
            times.store += time.perf_counter() - started

    def ingest_one(self, found: Found, acl: tuple[str, ...], times: StageTimes) -> FileResult:
        before = replace(times)
        result = self._ingest_one(found, acl, times)
        _count(result, before, times)
        return result

    def _ingest_one(self, found: Found, acl: tuple[str, ...], times: StageTimes) -> FileResult:
        if found.resolved is None:
            source = str(found.path.absolute())
            reason = f"unreadable: {found.problem}"
            self.registry.record_failure(make_doc_id(source), source, None, reason)
            return FileResult(source, "failed", reason=reason)
        source = str(found.resolved)
        doc_id = make_doc_id(source)
        try:
            version = _sha256(found.resolved)
        except UnreadableFile as exc:
            self.registry.record_failure(doc_id, source, None, str(exc))
            return FileResult(source, "failed", doc_id, reason=str(exc))

        known = self.registry.get(doc_id)
        if known is not None and known.active_version == version:
            if tuple(known.groups) == acl:
                return FileResult(source, "unchanged", doc_id, known.chunk_count, known.page_count)
            self.store.set_access(doc_id, acl)
            self.registry.set_groups(doc_id, acl)
            return FileResult(source, "updated", doc_id, known.chunk_count, known.page_count)

        document = Document(doc_id, source, version, acl, {"filename": found.resolved.name})
        try:
            parsed, chunks = self._prepare(found.resolved, document, times)
        except DocumentError as exc:
            self.registry.record_failure(doc_id, source, version, str(exc))
            return FileResult(source, "failed", doc_id, reason=str(exc))
        self._store(document, parsed, chunks, times)
        times.files += 1
        times.pages += parsed.page_count or 0
        times.chunks += len(chunks)
        return FileResult(source, "ingested", doc_id, len(chunks), parsed.page_count)

    def _prepare(
        self, path: Path, document: Document, times: StageTimes
    ) -> tuple[ParsedDocument, list[Chunk]]:
        limits = self.settings.ingest
        started = time.perf_counter()
        parsed = parse_file(
            path, max_bytes=int(limits.max_file_mb * 1024 * 1024), max_pages=limits.max_pages
        )
        times.parse += time.perf_counter() - started
        started = time.perf_counter()
        chunks = self.chunker.chunk(document.doc_id, document.version_sha256, parsed)
        times.chunk += time.perf_counter() - started
        return parsed, chunks

    def _store(
        self, document: Document, parsed: ParsedDocument, chunks: list[Chunk], times: StageTimes
    ) -> None:
        doc_id, version = document.doc_id, document.version_sha256
        # Every vector first, then the writes in one store session: a store that several
        # processes share (see EdgeStore.hold_open) is held only for the writes.
        now = datetime.now(UTC)
        points: list[StoredChunk] = []
        batch = self.settings.ingest.upsert_batch
        for i in range(0, len(chunks), batch):
            part = chunks[i : i + batch]
            texts = [c.embedding_text() for c in part]
            started = time.perf_counter()
            dense = self.embedder.embed(texts)
            sparse = [self.sparse.encode_document(t) for t in texts]
            times.embed += time.perf_counter() - started
            points.extend(
                StoredChunk(c, document, parsed.title, d.tolist(), s, now)
                for c, d, s in zip(part, dense, sparse, strict=True)
            )
        started = time.perf_counter()
        self.registry.begin_version(doc_id, document.source, version, parsed.title, parsed.page_count)
        with self.store.session():
            try:
                for i in range(0, len(points), batch):
                    self.store.upsert(points[i : i + batch])
                stored = self.store.count(doc_id, version)
                if stored != len(chunks):
                    raise StoreError(
                        f"wrote {len(chunks)} chunks of {document.source} but found {stored}"
                    )
                previous = self.registry.activate(
                    doc_id, version, len(chunks), document.acl, parsed.title
                )
                if previous:
                    self.store.delete(doc_id, previous)
                    self.registry.mark_purged(doc_id, previous)
            except BaseException:
                # Leave nothing half-written; if even this fails, the next run's repair will.
                try:
                    self.store.delete(doc_id, version)
                    self.registry.mark_purged(doc_id, version)
                except Exception:
                    log.exception("cleanup of %s failed; the next run repairs it", document.source)
                raise
        times.store += time.perf_counter() - started

    # -- keeping the registry and the store in agreement -------------------------------------

    def repair(self, doc_id: str | None = None) -> int:
        """Remove what an interrupted run left behind; returns how many versions it cleaned.

        ``doc_id``: only that document's leftovers. A worker repairs just the document it
        is about to ingest, never another worker's write in progress.
        """
        stale = self.registry.stale_versions(doc_id)
        if stale:
            with self.store.session():
                for item in stale:
                    self.store.delete(item.doc_id, item.version)
                    self.registry.mark_purged(item.doc_id, item.version)
            log.warning("repaired %d versions left by an interrupted run", len(stale))
        return len(stale)

    def check(self) -> list[str]:
        """Compare the registry with the store; returns the disagreements found (empty: none)."""
        expected = self.registry.active_chunk_counts()
        actual = self.store.doc_counts()
        problems = []
        for doc_id in sorted(set(expected) | set(actual)):
            want, have = expected.get(doc_id, 0), actual.get(doc_id, 0)
            if want != have:
                problems.append(f"{doc_id}: registry says {want} chunks, store holds {have}")
        return problems

    def delete(self, ref: str) -> DocumentInfo:
        """Remove a document everywhere, by doc_id or by source path."""
        info = self.find(ref)
        if info is None:
            raise NotFound(f"no document {ref!r}")
        return self._delete(info)

    def find(self, ref: str) -> DocumentInfo | None:
        """A document by doc_id or by source path."""
        # The file may be gone already: resolve the path as named, without requiring it.
        return (
            self.registry.get(ref)
            or self.registry.find_by_source(ref)
            or self.registry.find_by_source(str(Path(ref).resolve()))
        )

    def delete_id(self, doc_id: str) -> DocumentInfo:
        """Remove a document everywhere, by doc_id only (what the admin API accepts)."""
        info = self.registry.get(doc_id)
        if info is None:
            raise NotFound(f"no document {doc_id!r}")
        return self._delete(info)

    def _delete(self, info: DocumentInfo) -> DocumentInfo:
        self.registry.deactivate(info.doc_id)
        self.store.delete(info.doc_id)
        self.registry.remove(info.doc_id)
        return info


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError as exc:
        raise UnreadableFile("the file vanished during the run") from exc
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc)) from exc
    return digest.hexdigest()


def _count(result: FileResult, before: StageTimes, after: StageTimes) -> None:
    metrics.INGEST_DOCUMENTS.labels(result.status).inc()
    if result.status == "ingested":
        metrics.INGEST_CHUNKS.inc(result.chunks)
        metrics.INGEST_PAGES.inc(result.pages or 0)
    for stage in metrics.INGEST_STAGES:
        spent = getattr(after, stage) - getattr(before, stage)
        if spent > 0:
            metrics.INGEST_STAGE_SECONDS.labels(stage).inc(spent)
