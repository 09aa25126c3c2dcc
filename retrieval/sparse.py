"""BM25-style sparse vectors: the document side carries saturated term frequencies,
Qdrant's IDF modifier supplies the inverse document frequency at query time.

Analysis: lower-case word tokens, English stop words dropped, Snowball stems.
Term ids are a stable 32-bit hash of the stem, so no vocabulary needs storing.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import re
import sys
import threading
import zlib
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.types import SparseVector

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    """spaCy's English stop words, read from its file without importing spaCy: spaCy's
    package imports thinc, which imports PyTorch (seconds of every `enclave search`)."""
    spec = importlib.util.find_spec("spacy")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("spaCy's stop word list is missing: run `make install`")
    path = Path(next(iter(spec.submodule_search_locations))) / "lang" / "en" / "stop_words.py"
    names: dict[str, Any] = {}
    # The file is plain data (a set of words and a loop adding contractions) from the
    # installed, pinned package.
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), names)
    return frozenset(names["STOP_WORDS"])


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    """NLTK's Snowball English stemmer, which made the stored sparse vectors' terms (PyStemmer
    follows Snowball 3, whose stems differ for words such as "international").

    Importing it imports all of NLTK, and with it scikit-learn, SciPy and pandas: 1.3 of the
    1.6 s it cost every `enclave search`. The stemmer uses none of them, and NLTK imports each
    in a ``try`` for the features that need them, so when NLTK is not loaded yet they are
    kept out of that import (in this thread only; later imports of them work as usual).
    """
    if "nltk" in sys.modules:
        from nltk.stem.snowball import SnowballStemmer
    else:
        keep_out = _KeepOut(threading.get_ident())
        sys.meta_path.insert(0, keep_out)
        try:
            from nltk.stem.snowball import SnowballStemmer
        finally:
            sys.meta_path.remove(keep_out)
    return SnowballStemmer("english")


class _KeepOut(importlib.abc.MetaPathFinder):
    """Refuses NLTK's optional heavy imports to one thread, while it imports NLTK."""

    PACKAGES = frozenset({"sklearn", "scipy", "pandas"})

    def __init__(self, thread: int) -> None:
        self.thread = thread

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.partition(".")[0] in self.PACKAGES and threading.get_ident() == self.thread:
            raise ImportError(f"{fullname} is not needed for stemming")
        return None


class Bm25SparseEncoder:
    def __init__(self, k1: float = 1.2, b: float = 0.75, avg_len: float = 120.0) -> None:
        self.k1 = k1
        self.b = b
        self.avg_len = avg_len
        self._stem = lru_cache(maxsize=200_000)(self._stem_uncached)

    def _stem_uncached(self, token: str) -> str:
        return str(_stemmer().stem(token))

    def terms(self, text: str) -> list[str]:
        stops = _stop_words()
        return [
            self._stem(token)
            for token in _TOKEN.findall(text.lower())
            if token not in stops and len(token) < 40
        ]

    @staticmethod
    def term_id(term: str) -> int:
        return zlib.crc32(term.encode("utf-8"))

    def encode_document(self, text: str) -> SparseVector:
        terms = self.terms(text)
        if not terms:
            return SparseVector((), ())
        norm = self.k1 * (1 - self.b + self.b * len(terms) / self.avg_len)
        weights: dict[int, float] = {}
        for term, tf in Counter(terms).items():
            term_id = self.term_id(term)
            # Distinct stems rarely share a 32-bit id; when they do, their weights add up.
            weights[term_id] = weights.get(term_id, 0.0) + tf * (self.k1 + 1) / (tf + norm)
        indices = sorted(weights)
        return SparseVector(tuple(indices), tuple(weights[i] for i in indices))

    def encode_query(self, text: str) -> SparseVector:
        ids = sorted({self.term_id(term) for term in self.terms(text)})
        return SparseVector(tuple(ids), tuple(1.0 for _ in ids))
