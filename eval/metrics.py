"""Ranking metrics as BEIR and pytrec_eval compute them (graded relevance, linear gain).

``ranked`` is a query's document ids, best first, without repeats; ``relevant`` maps the
judged document ids to their grades (a grade of 0 or less is not relevant).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def ndcg_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain of the first ``k``: gain / log2(rank + 1)."""
    gains = [max(0, relevant.get(doc, 0)) for doc in ranked[:k]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 100) -> float:
    """Share of the relevant documents found in the first ``k``."""
    wanted = {doc for doc, grade in relevant.items() if grade > 0}
    if not wanted:
        return 0.0
    return len(wanted & set(ranked[:k])) / len(wanted)


def mrr_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """1 / the rank of the first relevant document within ``k``; 0 if there is none."""
    for i, doc in enumerate(ranked[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def evaluate(runs: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]
             ) -> dict[str, float]:
    """Mean nDCG@10, Recall@100 and MRR@10 over the judged queries (unranked ones score 0)."""
    judged = [q for q, rel in qrels.items() if any(g > 0 for g in rel.values())]
    return {
        "ndcg@10": mean([ndcg_at(runs.get(q, ()), qrels[q], 10) for q in judged]),
        "recall@100": mean([recall_at(runs.get(q, ()), qrels[q], 100) for q in judged]),
        "mrr@10": mean([mrr_at(runs.get(q, ()), qrels[q], 10) for q in judged]),
        "queries": float(len(judged)),
    }
