"""An answer composed sentence by sentence, so that each can be shown the moment it is verified.

A sentence arrives verified (:class:`Verified`); the policy keeps or drops it; a kept one
gets its citation numbers (passages renumbered in order of first use: [1] is the first
passage cited) and is shown at once (:class:`Shown`). What a stream sent is therefore
exactly what the final answer says, sentence for sentence.

Citations: one entry per passage span. Quotes of one passage that overlap or touch
(only blanks between them) are merged into one, so a passage cited by three sentences
is listed once with the span that covers them, not three times.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.types import Chunk, Citation, SentenceCheck
from serve.answering.verify import Match, PassageIndex, Verifier


@dataclass(slots=True)
class Verified:
    """One sentence of the answer and what verification found for it."""

    text: str  # citation markers removed
    cited: list[int]  # passage numbers (1-based, in the order the model saw them)
    match: Match | None  # the best-supporting span, within the cited passage when it holds one
    supported: bool
    attributed: bool  # the citation was attached by verification, not written by the model


@dataclass(frozen=True, slots=True)
class Shown:
    """A sentence as a client sees it: its text with markers, and its own quotes."""

    index: int  # 0-based, among the sentences shown
    text: str
    citations: tuple[Citation, ...]
    supported: bool


@dataclass(slots=True)
class Composer:
    index: PassageIndex  # the passages the model saw, numbered as in its prompt
    verifier: Verifier
    question: str
    keep_unsupported: bool  # the "mark" policy: unsupported sentences stay, marked
    renumber: dict[int, int] = field(default_factory=dict)
    shown: list[Shown] = field(default_factory=list)
    checks: list[SentenceCheck] = field(default_factory=list)
    # Merged spans, (n, supported) -> [(start, end)] in the passage's own text.
    _spans: dict[tuple[int, bool], list[tuple[int, int]]] = field(default_factory=dict)

    @property
    def supported(self) -> int:
        return sum(c.supported for c in self.checks)

    @property
    def dropped(self) -> int:
        return sum(not c.kept for c in self.checks)

    def add(self, sentence: Verified) -> Shown | None:
        """Number and show ``sentence``; None when the policy drops it."""
        kept = sentence.supported or self.keep_unsupported
        ns: list[int] = []
        own: list[Citation] = []
        if kept:
            for passage_n in sentence.cited:
                n = self.renumber.setdefault(passage_n, len(self.renumber) + 1)
                ns.append(n)
                match = self._match(sentence, passage_n)
                if match is not None:
                    chunk = self.index.chunks[passage_n - 1]
                    own.append(citation(n, chunk, match.start, match.end, sentence.supported))
                    self._merge((n, sentence.supported), match.start, match.end, chunk.text)
        score = round(sentence.match.score, 4) if sentence.match else 0.0
        self.checks.append(SentenceCheck(sentence.text, tuple(ns), sentence.supported, score,
                                         sentence.attributed, kept))
        if not kept:
            return None
        shown = Shown(len(self.shown), with_marks(sentence.text, ns), tuple(own), sentence.supported)
        self.shown.append(shown)
        return shown

    def text(self) -> str:
        text = " ".join(s.text for s in self.shown)
        if dropped := self.dropped:
            text += (f"\n\n({sentences(dropped)} removed: the passages do not support "
                     f"{'them' if dropped > 1 else 'it'}.)")
        return text

    def citations(self) -> tuple[Citation, ...]:
        passage_of = {n: p for p, n in self.renumber.items()}
        out = [citation(n, self.index.chunks[passage_of[n] - 1], start, end, supported)
               for (n, supported), spans in self._spans.items() for start, end in spans]
        return tuple(sorted(out, key=lambda c: (c.n, c.start, not c.supported)))

    def _match(self, sentence: Verified, passage_n: int) -> Match | None:
        if sentence.match is not None and sentence.match.passage == passage_n - 1:
            return sentence.match
        # A second passage the sentence cites: its own best span there.
        return self.verifier.best(sentence.text, self.index, [passage_n - 1], self.question)

    def _merge(self, key: tuple[int, bool], start: int, end: int, text: str) -> None:
        spans = [*self._spans.get(key, []), (start, end)]
        spans.sort()
        merged: list[tuple[int, int]] = []
        for s, e in spans:
            if merged and (s <= merged[-1][1] or not text[merged[-1][1]:s].strip()):
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            else:
                merged.append((s, e))
        self._spans[key] = merged


def citation(n: int, chunk: Chunk, start: int, end: int, supported: bool) -> Citation:
    """A citation of ``chunk``'s text [start, end): its quote, verbatim."""
    return Citation(
        n=n, chunk_id=chunk.chunk_id, doc_id=chunk.doc_id, version=chunk.version,
        source=chunk.source, display=chunk.display, page=chunk.page_start,
        quote=chunk.text[start:end],
        # Offsets into the document's extracted text, where the chunk starts at char_start.
        start=chunk.char_start + start, end=chunk.char_start + end, supported=supported,
        ocr=bool(chunk.meta.get("ocr", False)),
    )


def with_marks(sentence: str, ns: Sequence[int]) -> str:
    """The sentence with its markers before the closing punctuation: "... year [1]."."""
    marks = "".join(f"[{n}]" for n in ns)
    if not marks:
        return sentence
    end = re.search(r"[.!?]+[\"')\]]*$", sentence)
    if end is None:
        return f"{sentence} {marks}"
    return f"{sentence[: end.start()].rstrip()} {marks}{sentence[end.start() :]}"


def sentences(n: int) -> str:
    return f"{n} sentence{'s' if n > 1 else ''} of the model's answer"
