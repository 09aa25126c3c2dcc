"""Reference points measured in the same run as enclave's own modes, on whole documents:

- BM25 from the ``bm25s`` package (English stop words, the same Snowball stemmer as ours),
  over "title text";
- plain cosine: the same embedding model's vector of "title text" per document, every
  document scored exactly (no index, no chunking).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.ports import Embedder
from eval.metrics import evaluate
from eval.retrieval import DEPTH, Benchmark, latency, rounded

_EMBED_BATCH = 64


class _Snowball:
    """The stemmer ``retrieval.sparse`` uses, in the shape bm25s calls (a list of words)."""

    def __init__(self) -> None:
        from nltk.stem.snowball import SnowballStemmer

        self._stemmer = SnowballStemmer("english")

    def stemWords(self, words: Sequence[str]) -> list[str]:  # bm25s calls it by this name
        return [self._stemmer.stem(w) for w in words]


def _whole(title: str, text: str) -> str:
    return f"{title} {text}".strip()


def bm25_anchor(bench: Benchmark) -> dict[str, Any]:
    import bm25s

    ids = list(bench.corpus)
    stemmer = _Snowball()
    started = time.perf_counter()
    tokens = bm25s.tokenize([_whole(*bench.corpus[d]) for d in ids], stopwords="en",
                            stemmer=stemmer, show_progress=False)
    index = bm25s.BM25()
    index.index(tokens, show_progress=False)
    index_s = time.perf_counter() - started
    runs, latencies = {}, []
    for qid, text in bench.queries.items():
        started = time.perf_counter()
        query = bm25s.tokenize([text], stopwords="en", stemmer=stemmer, show_progress=False)
        found, _ = index.retrieve(query, k=min(DEPTH, len(ids)), show_progress=False,
                                  n_threads=1)
        latencies.append(time.perf_counter() - started)
        runs[qid] = [ids[int(i)] for i in found[0]]
    return {**rounded(evaluate(runs, bench.qrels)), **latency(latencies),
            "index_s": round(index_s, 1)}


def cosine_anchor(bench: Benchmark, embedder: Embedder) -> dict[str, Any]:
    ids = list(bench.corpus)
    texts = [_whole(*bench.corpus[d]) for d in ids]
    started = time.perf_counter()
    vectors = np.vstack([embedder.embed(texts[i : i + _EMBED_BATCH])
                         for i in range(0, len(texts), _EMBED_BATCH)])
    index_s = time.perf_counter() - started
    runs, latencies = {}, []
    for qid, text in bench.queries.items():
        started = time.perf_counter()
        scores = vectors @ embedder.embed([text])[0]
        top = np.argsort(-scores)[:DEPTH]
        latencies.append(time.perf_counter() - started)
        runs[qid] = [ids[int(i)] for i in top]
    return {**rounded(evaluate(runs, bench.qrels)), **latency(latencies),
            "index_s": round(index_s, 1)}
