"""Ingest files: parse -> chunk -> embed -> store, one file at a time, each failing alone.

A file's outcome is ``ingested`` (new or changed), ``unchanged`` (same bytes, same
groups: nothing written), ``updated`` (same bytes, new groups) or ``failed`` with a
one-line reason. See :mod:`core.registry` for why the registry and the store agree
even when a run is killed midway, and :meth:`Ingestor.repair` for how the next run
puts things right. A file that must be parsed is parsed from a private copy whose hash
is its version (:mod:`ingest.snapshot`), so a file rewritten mid-run cannot pair one
content's hash with another's text. An archive's members are documents of their own
(:meth:`Ingestor.ingest_found`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from core import metrics
from core.errors import DocumentError, StoreError, UnreadableFile
from core.names import validate_groups
from core.ports import Embedder, SparseEncoder, StoredChunk, VectorStore
from core.registry import DocumentInfo, Registry
from core.settings import Settings
from core.types import Chunk, Document, ParsedDocument, make_doc_id
from ingest.archives import SEPARATOR, Limits, Member, expand, is_archive
from ingest.chunk import SectionChunker
from ingest.discover import Found, discover
from ingest.parse import parse_file, unsupported
from ingest.snapshot import Snapshot, clean_stale, sha256_of, snapshot
from ingest.upkeep import Upkeep

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
    # Pages read by OCR, and those of them read with less than the minimum confidence.
    ocr_pages: int = 0
    low_confidence_pages: tuple[int, ...] = ()


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


class Ingestor(Upkeep):
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
        self.scratch = settings.resolved_data_dir / "scratch"
        clean_stale(self.scratch)

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
        for found in discover(paths, private=[self.settings.resolved_data_dir]):
            if on_found:
                on_found(found)
            for result in self.ingest_found(found, acl, report.times):
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

    def ingest_found(
        self, found: Found, acl: tuple[str, ...], times: StageTimes
    ) -> list[FileResult]:
        """The outcome of a file found: one, or one per member of an archive."""
        if (found.resolved is not None and self.settings.archives.enabled
                and is_archive(found.resolved.name)):
            return self._ingest_archive(found, found.resolved, acl, times)
        return [self.ingest_one(found, acl, times)]

    def ingest_one(self, found: Found, acl: tuple[str, ...], times: StageTimes) -> FileResult:
        before = replace(times)
        result = self._ingest_one(found, acl, times)
        _count(result, before, times)
        return result

    def _ingest_one(self, found: Found, acl: tuple[str, ...], times: StageTimes) -> FileResult:
        if found.resolved is None:
            source = str(found.path.absolute())
            reason = found.reason
            self.registry.record_failure(make_doc_id(source), source, None, reason)
            return FileResult(source, "failed", reason=reason)
        source = found.source_name
        doc_id = make_doc_id(source)
        try:
            # Hashing alone is cheap: most files of a re-run are unchanged and never copied.
            version = sha256_of(found.resolved)
        except UnreadableFile as exc:
            self.registry.record_failure(doc_id, source, None, str(exc))
            return FileResult(source, "failed", doc_id, reason=str(exc))
        known = self.registry.get(doc_id)
        if (same := self._if_same(known, version, acl, source)) is not None:
            return same
        max_bytes = int(self.settings.ingest.max_file_mb * 1024 * 1024)
        try:
            with snapshot(found.resolved, self.scratch, max_bytes) as copy:
                # Changed back since it was hashed? Then the copy is what is active already.
                if (same := self._if_same(known, copy.sha256, acl, source)) is not None:
                    return same
                return self._ingest_copy(source, found.display_name, copy, acl, times,
                                         dict(found.meta))
        except DocumentError as exc:  # the copy failed: too large, vanished, unreadable
            self.registry.record_failure(doc_id, source, version, str(exc))
            return FileResult(source, "failed", doc_id, reason=str(exc))

    def _if_same(
        self, known: DocumentInfo | None, version: str, acl: tuple[str, ...], source: str
    ) -> FileResult | None:
        """The outcome when ``version`` is the active one already (None: it is not)."""
        if known is None or known.active_version != version:
            return None
        if tuple(known.groups) == acl:
            return FileResult(source, "unchanged", known.doc_id, known.chunk_count,
                              known.page_count)
        self.store.set_access(known.doc_id, acl)
        self.registry.set_groups(known.doc_id, acl)
        return FileResult(source, "updated", known.doc_id, known.chunk_count, known.page_count)

    # -- archives: each member a document of its own -----------------------------------------

    def _ingest_archive(
        self, found: Found, path: Path, acl: tuple[str, ...], times: StageTimes
    ) -> list[FileResult]:
        """Each member as a document whose source is ``<archive>!/<member path>``.

        The archive is copied once, and expanded inside that copy's scratch folder, removed
        with it; members are hashed as they come out, so an unchanged member is
        ``unchanged`` and an unchanged archive writes nothing. Members no longer in the
        archive leave the index. An archive that cannot be expanded (corrupt, over a limit)
        fails as one file, and the members it had stay as they were.
        """
        source = found.source_name
        limits = Limits.of(self.settings.archives,
                           int(self.settings.ingest.max_file_mb * 1024 * 1024))
        try:
            with snapshot(path, self.scratch, limits.max_total_bytes) as copy:
                members = expand(copy.path, copy.path.parent / "members", limits, unsupported)
                results = [self._ingest_member(source, found.display_name, m, acl, times)
                           for m in members]
        except DocumentError as exc:
            doc_id = make_doc_id(source)
            self.registry.record_failure(doc_id, source, None, str(exc))
            failed = FileResult(source, "failed", doc_id, reason=str(exc))
            _count(failed, times, times)
            return [failed]
        # The archive itself is no document: drop what an earlier failure recorded of it.
        known = self.registry.get(make_doc_id(source))
        if known is not None and known.active_version is None:
            self.registry.remove(known.doc_id)
        current = {r.source for r in results}
        for gone in self.registry.documents_under(source + SEPARATOR):
            if gone.source not in current:
                self._delete(gone)
        return results

    def _ingest_member(
        self, archive: str, display: str, member: Member, acl: tuple[str, ...],
        times: StageTimes,
    ) -> FileResult:
        source = archive + SEPARATOR + member.name
        doc_id = make_doc_id(source)
        before = replace(times)
        if member.path is None or member.sha256 is None:
            reason = str(member.problem)
            self.registry.record_failure(doc_id, source, None, reason)
            result = FileResult(source, "failed", doc_id, reason=reason)
        else:
            self.repair(doc_id)  # what an interrupted run left of this member
            copy = Snapshot(member.path, member.sha256)  # extracted, hashed: a private copy
            result = (self._if_same(self.registry.get(doc_id), copy.sha256, acl, source)
                      or self._ingest_copy(source, display + SEPARATOR + member.name, copy,
                                           acl, times))
        _count(result, before, times)
        return result

    # -- one file ------------------------------------------------------------------------------

    def _ingest_copy(
        self, source: str, display: str, copy: Snapshot, acl: tuple[str, ...], times: StageTimes,
        source_meta: dict[str, str] | None = None,
    ) -> FileResult:
        doc_id = make_doc_id(source)
        meta: dict[str, object] = {"filename": copy.path.name, "display": display}
        if source_meta:
            meta["source_meta"] = source_meta
        document = Document(doc_id, source, copy.sha256, acl, meta)
        try:
            parsed, chunks = self._prepare(copy.path, document, times)
        except DocumentError as exc:
            # A parser's message may name the file it read: the copy, which no one knows.
            reason = str(exc).replace(str(copy.path), source)
            self.registry.record_failure(doc_id, source, copy.sha256, reason)
            return FileResult(source, "failed", doc_id, reason=reason)
        self._store(document, parsed, chunks, times)
        times.files += 1
        times.pages += parsed.page_count or 0
        times.chunks += len(chunks)
        minimum = self.settings.ocr.min_confidence
        return FileResult(source, "ingested", doc_id, len(chunks), parsed.page_count,
                          ocr_pages=len(parsed.ocr_pages),
                          low_confidence_pages=tuple(p.page for p in parsed.ocr_pages
                                                     if p.low(minimum)))

    def _prepare(
        self, path: Path, document: Document, times: StageTimes
    ) -> tuple[ParsedDocument, list[Chunk]]:
        limits = self.settings.ingest
        started = time.perf_counter()
        parsed = parse_file(
            path, max_bytes=int(limits.max_file_mb * 1024 * 1024), max_pages=limits.max_pages,
            ocr=self.settings.ocr, convert=self.settings.convert, scratch=path.parent,
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
        display = str(document.meta.get("display") or "") or None
        self.registry.begin_version(doc_id, document.source, version, parsed.title,
                                    parsed.page_count, display_name=display,
                                    ocr_pages=parsed.ocr_pages)
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
                    doc_id, version, len(chunks), document.acl, parsed.title, display_name=display
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


def _count(result: FileResult, before: StageTimes, after: StageTimes) -> None:
    metrics.INGEST_DOCUMENTS.labels(result.status).inc()
    if result.status == "ingested":
        metrics.INGEST_CHUNKS.inc(result.chunks)
        metrics.INGEST_PAGES.inc(result.pages or 0)
    for stage in metrics.INGEST_STAGES:
        spent = getattr(after, stage) - getattr(before, stage)
        if spent > 0:
            metrics.INGEST_STAGE_SECONDS.labels(stage).inc(spent)
