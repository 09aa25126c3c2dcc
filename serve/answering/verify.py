"""Does a passage support a sentence? Alignment of the sentence to the passage's best span.

A span is one sentence of the passage or two adjacent ones. Each span is scored by the
embedding model's cosine similarity to the sentence and by how many of the sentence's
content terms (stemmed, stop words dropped) it contains; numbers in the sentence must
appear in the span, since small models most often invent figures. The quote a citation
shows is the best span, cut verbatim from the stored passage, so it always exists there.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.ports import Embedder
from core.sentences import split_sentences
from core.types import Chunk
from serve.answering.sentences import strip_markers

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# How far a long passage sentence is cut for the embedding model, in characters.
_MAX_SPAN_CHARS = 1200


@dataclass(frozen=True, slots=True)
class Match:
    passage: int  # index into the passages given to :meth:`Verifier.index`
    start: int  # offsets into that passage's chunk text
    end: int
    cosine: float
    overlap: float
    numbers_ok: bool

    @property
    def score(self) -> float:
        if not self.numbers_ok:
            return 0.0
        return 0.5 * self.cosine + 0.5 * self.overlap


@dataclass(slots=True)
class PassageIndex:
    chunks: list[Chunk]
    spans: list[tuple[int, int, int]]  # (passage, start, end)
    vectors: npt.NDArray[np.float32]
    terms: list[set[str]]
    numbers: list[set[str]]

    def sentence_vectors(
        self, spans: Sequence[tuple[int, int, int]], embedder: Embedder
    ) -> npt.NDArray[np.float32]:
        """Vectors of passage sentences: the index's own where it embedded them whole."""
        row = {span: i for i, span in enumerate(self.spans)}
        out = np.zeros((len(spans), self.vectors.shape[1]), np.float32)
        missing = []
        for j, (p, s, e) in enumerate(spans):
            if (p, s, e) in row and e - s <= _MAX_SPAN_CHARS:
                out[j] = self.vectors[row[(p, s, e)]]
            else:
                missing.append(j)
        if missing:
            texts = [self.chunks[spans[j][0]].text[spans[j][1] : spans[j][2]] for j in missing]
            out[missing] = embedder.embed(texts)
        return out

    def subset(self, positions: Sequence[int]) -> PassageIndex:
        """The index of some of the passages, renumbered in the order given."""
        new = {old: i for i, old in enumerate(positions)}
        keep = [i for i, (p, _, _) in enumerate(self.spans) if p in new]
        return PassageIndex(
            [self.chunks[p] for p in positions],
            [(new[self.spans[i][0]], self.spans[i][1], self.spans[i][2]) for i in keep],
            self.vectors[keep] if keep else self.vectors[:0],
            [self.terms[i] for i in keep],
            [self.numbers[i] for i in keep],
        )


class Verifier:
    def __init__(
        self,
        embedder: Embedder,
        terms: Callable[[str], list[str]],
        min_support: float,
    ) -> None:
        self.embedder = embedder
        self.terms = terms
        self.min_support = min_support
        # Words about the task, not the world ("The answer is: 28 days."): no claim to check.
        self._meta = set(terms("answer answers passage passages question document documents"))

    def index(self, chunks: Sequence[Chunk]) -> PassageIndex:
        spans: list[tuple[int, int, int]] = []
        for p, chunk in enumerate(chunks):
            sentences = split_sentences(chunk.text)
            spans.extend((p, s, e) for s, e in sentences)
            spans.extend((p, a[0], b[1]) for a, b in itertools.pairwise(sentences))
        texts = [chunks[p].text[s:e][:_MAX_SPAN_CHARS] for p, s, e in spans]
        vectors = self.embedder.embed(texts) if texts else np.zeros((0, self.embedder.dim), np.float32)
        return PassageIndex(
            list(chunks),
            spans,
            vectors,
            [set(self.terms(t)) for t in texts],
            [set(_NUMBER.findall(chunks[p].text[s:e])) for p, s, e in spans],
        )

    def best(
        self,
        sentence: str,
        index: PassageIndex,
        among: Sequence[int] | None = None,
        question: str = "",
    ) -> Match | None:
        """The best-supporting span for ``sentence``, within passages ``among`` (all if None)."""
        return self.rank([sentence], index, among, question)[0]

    def rank(
        self,
        sentences: Sequence[str],
        index: PassageIndex,
        among: Sequence[int] | None = None,
        question: str = "",
    ) -> list[Match | None]:
        """Best spans for ``sentences``, within passages ``among`` (all if None)."""
        return [pick(row, among) for row in self.grid(sentences, index, question)]

    def grid(
        self, sentences: Sequence[str], index: PassageIndex, question: str = ""
    ) -> list[list[Match | None]]:
        """For each sentence, its best span in each passage: one embedding pass for all.

        With ``question``, the sentence's terms that merely repeat the question do not count
        towards the overlap: "The real name of X is Y" must find Y in the span, not X. A
        sentence that only restates the question has nothing left to support.
        """
        given = self._meta | (set(self.terms(question)) if question else set())
        return self._grid(sentences, index, given)

    def best_per_passage(self, sentence: str, index: PassageIndex, min_words: int = 0) -> list[Match | None]:
        """The best span of each passage for one sentence, every term counting.

        ``min_words`` skips shorter spans (headings), where a span is shown to a reader.
        """
        return self._grid([sentence], index, set(), min_words)[0]

    def _grid(
        self, sentences: Sequence[str], index: PassageIndex, given: set[str], min_words: int = 0
    ) -> list[list[Match | None]]:
        if not sentences:
            return []
        plain = [strip_markers(s) for s in sentences]
        vectors = self.embedder.embed(plain)
        out: list[list[Match | None]] = []
        for text, vector in zip(plain, vectors, strict=True):
            terms = set(self.terms(text)) - given
            numbers = set(_NUMBER.findall(text))
            cosines = index.vectors @ vector if len(index.spans) else np.zeros(0)
            row: list[Match | None] = [None] * len(index.chunks)
            for i, (p, s, e) in enumerate(index.spans):
                if min_words and len(index.chunks[p].text[s:e].split()) < min_words:
                    continue
                overlap = len(terms & index.terms[i]) / len(terms) if terms else 0.0
                match = Match(p, s, e, float(cosines[i]), overlap, numbers <= index.numbers[i])
                current = row[p]
                if current is None or match.score > current.score:
                    row[p] = match
            out.append(row)
        return out

    def supports(self, match: Match | None) -> bool:
        return match is not None and match.score >= self.min_support


def pick(row: Sequence[Match | None], among: Iterable[int] | None = None) -> Match | None:
    """The best of one sentence's per-passage matches, within passages ``among`` (all if None)."""
    best: Match | None = None
    for p in range(len(row)) if among is None else sorted(set(among)):
        match = row[p] if 0 <= p < len(row) else None
        if match is not None and (best is None or match.score > best.score):
            best = match
    return best
