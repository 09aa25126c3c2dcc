"""Client-side fusion of a dense and a sparse ranking: min-max normalised convex combination.

Qdrant fuses by rank (RRF) or by distribution (DBSF) inside the query. A convex combination
of min-max normalised scores keeps how far apart the candidates are on each side, which
rank fusion throws away; Bruch et al. ("An Analysis of Fusion Functions for Hybrid
Retrieval", 2023) found it ahead of RRF in and out of domain, and on SciFact train it gains
over both Qdrant fusions (eval/README.md). It needs the two rankings apart, so it works the
same over any store.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.types import Hit


def normalised(hits: Sequence[Hit], window: int) -> dict[str, float]:
    """Chunk id -> score mapped onto [0, 1]: the best scores 1, the ``window``-th best (or
    the last) 0, and any below it 0 as well.

    The fixed window makes a chunk's fused score independent of how deep the caller
    fetched: evaluation ranking 300 deep ranks the top as a user asking for 5 sees it.
    A ranking whose scores are all equal gives each hit 1: nothing separates them.
    """
    if not hits:
        return {}
    high, low = hits[0].score, hits[min(window, len(hits)) - 1].score
    span = high - low
    return {h.chunk.chunk_id: max(0.0, (h.score - low) / span) if span > 0 else 1.0
            for h in hits}


def convex(
    dense: Sequence[Hit], sparse: Sequence[Hit], dense_weight: float, window: int
) -> list[Hit]:
    """Both rankings (each best first) merged, best first, scored ``w * dense + (1 - w) *
    sparse`` after min-max normalisation over each one's top ``window``; a chunk missing
    from a ranking scores 0 on that side, as one below its window does.

    Ties keep the dense ranking's order, then the sparse one's.
    """
    d, s = normalised(dense, window), normalised(sparse, window)
    chunks = {h.chunk.chunk_id: h.chunk for h in (*dense, *sparse)}
    scored = {cid: dense_weight * d.get(cid, 0.0) + (1 - dense_weight) * s.get(cid, 0.0)
              for cid in chunks}
    order = sorted(scored, key=lambda cid: -scored[cid])  # stable: first-seen order on ties
    return [Hit(chunks[cid], scored[cid]) for cid in order]
