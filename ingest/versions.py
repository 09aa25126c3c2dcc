"""Writing one version of a document: its vectors, then its chunks and its registry rows.

Every vector is made first, and the writes then happen in one store session: a store
that several processes share (retrieval/edge_store.py) is held only for the writes. The
order of the writes is what keeps the registry and the store in agreement when a run is
killed anywhere (core/registry.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from core.errors import StoreError, one_line
from core.ports import Embedder, SparseEncoder, StoredChunk, VectorStore
from core.registry import Registry
from core.types import Chunk, Document, ParsedDocument

log = logging.getLogger(__name__)


def embed_points(
    embedder: Embedder, sparse: SparseEncoder, document: Document, title: str,
    chunks: Sequence[Chunk], batch: int,
) -> list[StoredChunk]:
    """The chunks with their dense and sparse vectors, ready to store."""
    now = datetime.now(UTC)
    points: list[StoredChunk] = []
    for i in range(0, len(chunks), batch):
        part = chunks[i : i + batch]
        texts = [c.embedding_text() for c in part]
        dense = embedder.embed(texts)
        encoded = [sparse.encode_document(t) for t in texts]
        points.extend(StoredChunk(c, document, title, d.tolist(), s, now)
                      for c, d, s in zip(part, dense, encoded, strict=True))
    return points


def write_version(
    registry: Registry, store: VectorStore, embedder: str, document: Document,
    parsed: ParsedDocument, points: Sequence[StoredChunk], batch: int, *, reembed: bool,
) -> None:
    """Store ``points`` as ``document``'s version and make it the one readers see.

    ``reembed``: the version is the active one already, with vectors of another embedder;
    its chunks are replaced in place (readers of the embedded store wait for the session).
    """
    doc_id, version = document.doc_id, document.version_sha256
    display = str(document.meta.get("display") or "") or None
    if not reembed:
        registry.begin_version(doc_id, document.source, version, parsed.title,
                               parsed.page_count, display_name=display,
                               ocr_pages=parsed.ocr_pages, embedder=embedder)
    with store.session():
        try:
            if reembed:
                # Chunk ids are the same, but the counts need not be (another tokenizer).
                store.delete(doc_id, version)
            for i in range(0, len(points), batch):
                store.upsert(points[i : i + batch])
            stored = store.count(doc_id, version)
            if stored != len(points):
                raise StoreError(
                    f"wrote {len(points)} chunks of {document.source} but found {stored}"
                )
            previous = registry.activate(
                doc_id, version, len(points), document.acl, parsed.title,
                display_name=display, embedder=embedder,
            )
            if previous:
                store.delete(doc_id, previous)
                registry.mark_purged(doc_id, previous)
        except BaseException as exc:
            if reembed:
                # The version stays active with what was written, recorded as made by the
                # old embedder: the next run re-embeds it, and `status` shows the mix.
                registry.record_failure(doc_id, document.source, version,
                                        f"re-embedding failed: {one_line(exc)}")
                raise
            # Leave nothing half-written; if even this fails, the next run's repair will.
            try:
                store.delete(doc_id, version)
                registry.mark_purged(doc_id, version)
            except Exception:
                log.exception("cleanup of %s failed; the next run repairs it", document.source)
            raise
