"""Hybrid search for a principal: dense + sparse in one Qdrant query, fused, access-filtered.

The access filter is inside the Qdrant query, so a chunk the principal may not read is
never returned, counted or scored. Hits of a version that is not (or no longer) active in
the registry are dropped: while a changed document is being replaced, readers see the old
version until the new one is complete, then only the new one.
"""

from __future__ import annotations

from typing import Any

from core.errors import InputError
from core.ports import Embedder, SparseEncoder, VectorStore
from core.registry import Registry
from core.settings import SearchSettings
from core.types import Hit, Principal
from retrieval.fusion import convex

MAX_QUERY_CHARS = 4000
# Extra candidates fetched so that dropping hits of inactive versions still leaves k.
OVERFETCH = 10


class Searcher:
    def __init__(
        self,
        settings: SearchSettings,
        store: VectorStore,
        embedder: Embedder,
        sparse: SparseEncoder,
        registry: Registry,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.sparse = sparse
        self.registry = registry
        self.store.ensure_collection(embedder.dim)

    def search(
        self, query: str, principal: Principal, k: int | None = None, mode: str | None = None
    ) -> list[Hit]:
        query = query.strip()
        if not query:
            raise InputError("the query is empty")
        if len(query) > MAX_QUERY_CHARS:
            raise InputError(f"the query is longer than {MAX_QUERY_CHARS} characters")
        k = k or self.settings.k
        if not 1 <= k <= 100:
            raise InputError("k must be between 1 and 100")
        return self.ranked(query, principal, k, mode or self.settings.mode)

    def describe(self, k: int, mode: str | None = None) -> dict[str, Any]:
        """What a search with these arguments runs: for the record of an answer, which must
        say what ran, not what the configuration says now."""
        mode = mode or self.settings.mode
        ran: dict[str, Any] = {"mode": mode, "k": k, "overfetch": OVERFETCH,
                               "embedding_model": self.embedder.name,
                               "store": type(self.store).__name__}
        if mode == "hybrid":
            ran["fusion"] = self.settings.fusion
            ran["prefetch"] = max(self.settings.prefetch, k + OVERFETCH)
            if self.settings.fusion == "minmax":
                ran["dense_weight"] = self.settings.dense_weight
        return ran

    def ranked(self, query: str, principal: Principal, limit: int, mode: str) -> list[Hit]:
        """The best ``limit`` live chunks by ``mode`` (hybrid, dense or sparse), unchecked:
        ``search`` checks what users send; evaluation ranks deeper than users may ask."""
        fetch = limit + OVERFETCH
        match mode:
            case "hybrid" if self.settings.fusion == "minmax":
                prefetch = max(self.settings.prefetch, fetch)
                dense = self.store.nearest(self.embedder.embed([query])[0].tolist(),
                                           principal.groups, prefetch)
                sparse = self.store.nearest(self.sparse.encode_query(query),
                                            principal.groups, prefetch)
                hits = convex(dense, sparse, self.settings.dense_weight,
                              self.settings.prefetch)[:fetch]
            case "hybrid":
                hits = self.store.hybrid_search(
                    self.embedder.embed([query])[0].tolist(),
                    self.sparse.encode_query(query),
                    principal.groups,
                    limit=fetch,
                    prefetch=max(self.settings.prefetch, fetch),
                    fusion=self.settings.fusion,
                )
            case "dense":
                hits = self.store.nearest(self.embedder.embed([query])[0].tolist(),
                                          principal.groups, fetch)
            case "sparse":
                hits = self.store.nearest(self.sparse.encode_query(query), principal.groups, fetch)
            case _:
                raise InputError(f"unknown search mode {mode!r}: hybrid, dense or sparse")
        active = self.registry.active_versions([h.chunk.doc_id for h in hits])
        live = [h for h in hits if active.get(h.chunk.doc_id) == h.chunk.version]
        return live[:limit]
