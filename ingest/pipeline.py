"""Ingest files: parse -> chunk -> embed -> store, one file at a time, each failing alone.

A file's outcome is ``ingested`` (new or changed), ``unchanged`` (same bytes, same
groups: nothing written), ``updated`` (same bytes, new groups) or ``failed`` with a
one-line reason. See :mod:`core.registry` for why the registry and the store agree
even when a run is killed midway, and :meth:`Ingestor.repair` for how the next run
puts things right. A file that must be parsed is parsed from a private copy whose hash
is its version (:mod:`ingest.snapshot`), so a file rewritten mid-run cannot pair one
content's hash with another's text. An archive's members are documents of their own
(:meth:`Ingestor.ingest_found`).

A file goes through two steps: :meth:`Ingestor.prepare_one` (hash, copy, parse, chunk:
mostly Python) and :meth:`Ingestor.finish_one` (embed, store). ``enclave ingest`` runs
the first ahead in a thread while the second runs here (ingest/overlap.py). Each file's
vectors are recorded with the embedder that made them: a file whose bytes are unchanged
but whose vectors came from another embedder (or from before that was recorded) is
re-embedded, in place, rather than left in another vector space.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core import metrics
from core.errors import DocumentError, ParseFailed, UnreadableFile, one_line
from core.names import validate_groups
from core.ports import Embedder, SparseEncoder, VectorStore
from core.registry import DocumentInfo, Registry
from core.settings import Settings
from core.types import Chunk, Document, ParsedDocument, make_doc_id
from ingest.archives import SEPARATOR, Limits, Member, expand, is_archive
from ingest.chunk import SectionChunker
from ingest.discover import Found, discover
from ingest.overlap import prepared_ahead, within
from ingest.parse import parse_file, unsupported
from ingest.snapshot import Snapshot, clean_stale, sha256_of, snapshot
from ingest.upkeep import Upkeep
from ingest.versions import embed_points, write_version

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

    def add(self, other: StageTimes) -> None:
        for name in ("parse", "chunk", "embed", "store", "pages", "chunks", "files"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True, slots=True)
class Prepared:
    """A file parsed and chunked, waiting for its vectors."""

    document: Document
    parsed: ParsedDocument
    chunks: list[Chunk]
    # Same bytes as the active version, vectors of another embedder: rewritten in place.
    reembed: bool
    times: StageTimes


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
        found_all = discover(paths, private=[self.settings.resolved_data_dir])

        def prepare(found: Found) -> FileResult | Prepared | None:
            # Archives are expanded and ingested member by member when their turn comes.
            return None if self._is_archive(found) else self.prepare_one(found, acl)

        for found, prepared in prepared_ahead(found_all, prepare,
                                              self.settings.ingest.parse_ahead):
            if on_found:
                on_found(found)
            results = (self.ingest_found(found, acl, report.times) if prepared is None
                       else [self.finish_one(prepared, report.times)])
            for result in results:
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
        if self._is_archive(found) and found.resolved is not None:
            return self._ingest_archive(found, found.resolved, acl, times)
        return [self.ingest_one(found, acl, times)]

    def _is_archive(self, found: Found) -> bool:
        return (found.resolved is not None and self.settings.archives.enabled
                and is_archive(found.resolved.name))

    def ingest_one(self, found: Found, acl: tuple[str, ...], times: StageTimes) -> FileResult:
        return self.finish_one(self.prepare_one(found, acl), times)

    def finish_one(self, step: FileResult | Prepared, times: StageTimes) -> FileResult:
        """Embed and store what :meth:`prepare_one` made ready (a result: nothing to do)."""
        mine = step.times if isinstance(step, Prepared) else StageTimes()
        result = step if isinstance(step, FileResult) else self._finish(step, mine)
        _count(result, StageTimes(), mine)
        times.add(mine)
        return result

    def prepare_one(self, found: Found, acl: tuple[str, ...]) -> FileResult | Prepared:
        """Everything before embedding; its outcome when that ends it (unchanged, failed).

        Runs in :func:`ingest.overlap.prepared_ahead`'s thread: it writes nothing to the
        store, and to the registry only what ends a file (a failure, new groups)."""
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
                return self._prepare_copy(source, found.display_name, copy, acl,
                                          dict(found.meta), known)
        except DocumentError as exc:  # the copy failed: too large, vanished, unreadable
            self.registry.record_failure(doc_id, source, version, str(exc))
            return FileResult(source, "failed", doc_id, reason=str(exc))

    def _if_same(
        self, known: DocumentInfo | None, version: str, acl: tuple[str, ...], source: str
    ) -> FileResult | None:
        """The outcome when ``version`` is the active one already (None: it is not)."""
        if known is None or known.active_version != version:
            return None
        if known.embedder != self.embedder.fingerprint:
            return None  # vectors of another embedder: re-embed
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
        if member.path is None or member.sha256 is None:
            reason = str(member.problem)
            self.registry.record_failure(doc_id, source, None, reason)
            return self.finish_one(FileResult(source, "failed", doc_id, reason=reason), times)
        self.repair(doc_id)  # what an interrupted run left of this member
        copy = Snapshot(member.path, member.sha256)  # extracted, hashed: a private copy
        known = self.registry.get(doc_id)
        step = (self._if_same(known, copy.sha256, acl, source)
                or self._prepare_copy(source, display + SEPARATOR + member.name, copy, acl,
                                      None, known))
        return self.finish_one(step, times)

    # -- one file ------------------------------------------------------------------------------

    def _prepare_copy(
        self, source: str, display: str, copy: Snapshot, acl: tuple[str, ...],
        source_meta: dict[str, str] | None, known: DocumentInfo | None,
    ) -> FileResult | Prepared:
        doc_id = make_doc_id(source)
        meta: dict[str, object] = {"filename": copy.path.name, "display": display}
        if source_meta:
            meta["source_meta"] = source_meta
        document = Document(doc_id, source, copy.sha256, acl, meta)
        times = StageTimes()
        try:
            parsed, chunks = self._prepare(copy.path, document, times)
        except DocumentError as exc:
            # A parser's message may name the file it read: the copy, which no one knows.
            reason = str(exc).replace(str(copy.path), source)
            self.registry.record_failure(doc_id, source, copy.sha256, reason)
            return FileResult(source, "failed", doc_id, reason=reason)
        reembed = known is not None and known.active_version == copy.sha256
        return Prepared(document, parsed, chunks, reembed, times)

    def _finish(self, ready: Prepared, times: StageTimes) -> FileResult:
        document, parsed, chunks = ready.document, ready.parsed, ready.chunks
        batch = self.settings.ingest.upsert_batch
        started = time.perf_counter()
        points = embed_points(self.embedder, self.sparse, document, parsed.title, chunks, batch)
        times.embed += time.perf_counter() - started
        started = time.perf_counter()
        write_version(self.registry, self.store, self.embedder.fingerprint, document, parsed,
                      points, batch, reembed=ready.reembed)
        times.store += time.perf_counter() - started
        times.files += 1
        times.pages += parsed.page_count or 0
        times.chunks += len(chunks)
        minimum = self.settings.ocr.min_confidence
        return FileResult(document.source, "ingested", document.doc_id, len(chunks),
                          parsed.page_count, ocr_pages=len(parsed.ocr_pages),
                          low_confidence_pages=tuple(p.page for p in parsed.ocr_pages
                                                     if p.low(minimum)))

    def _prepare(
        self, path: Path, document: Document, times: StageTimes
    ) -> tuple[ParsedDocument, list[Chunk]]:
        limits = self.settings.ingest
        started = time.perf_counter()

        def parse() -> ParsedDocument:
            try:
                return parse_file(
                    path, max_bytes=int(limits.max_file_mb * 1024 * 1024),
                    max_pages=limits.max_pages, ocr=self.settings.ocr,
                    convert=self.settings.convert, scratch=path.parent, pdf_text=limits.pdf_text)
            except (DocumentError, MemoryError):
                raise
            except Exception as exc:
                # A parser that crashes fails its file alone, like one that reports a problem.
                log.warning("parsing %s crashed", document.source, exc_info=True)
                raise ParseFailed(f"the parser crashed: {one_line(exc)}") from exc

        # Wrapped in the parser's thread: what interrupts the wait here (a time limit)
        # is not the parser's crash and leaves unchanged.
        parsed = within(limits.parse_timeout_s, parse)
        times.parse += time.perf_counter() - started
        started = time.perf_counter()
        chunks = self.chunker.chunk(document.doc_id, document.version_sha256, parsed)
        times.chunk += time.perf_counter() - started
        return parsed, chunks


def _count(result: FileResult, before: StageTimes, after: StageTimes) -> None:
    metrics.INGEST_DOCUMENTS.labels(result.status).inc()
    if result.status == "ingested":
        metrics.INGEST_CHUNKS.inc(result.chunks)
        metrics.INGEST_PAGES.inc(result.pages or 0)
    for stage in metrics.INGEST_STAGES:
        spent = getattr(after, stage) - getattr(before, stage)
        if spent > 0:
            metrics.INGEST_STAGE_SECONDS.labels(stage).inc(spent)
