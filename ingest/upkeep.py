"""Keeping the registry and the store in agreement, and removing documents from both.

Split from :mod:`ingest.pipeline`, which writes; these read both sides and clean up
after it (a run killed midway) or on an admin's request.
"""

from __future__ import annotations

import logging
from pathlib import Path

from core.errors import NotFound
from core.ports import VectorStore
from core.registry import DocumentInfo, Registry

log = logging.getLogger(__name__)


class Upkeep:
    registry: Registry
    store: VectorStore

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
        return disagreements(self.registry, self.store)

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


def disagreements(registry: Registry, store: VectorStore) -> list[str]:
    """Where the registry's chunk counts and the store's differ (empty: they agree)."""
    expected = registry.active_chunk_counts()
    actual = store.doc_counts()
    problems = []
    for doc_id in sorted(set(expected) | set(actual)):
        want, have = expected.get(doc_id, 0), actual.get(doc_id, 0)
        if want != have:
            problems.append(f"{doc_id}: registry says {want} chunks, store holds {have}")
    return problems
