"""The one sentence segmenter, with character offsets: chunking, verification and extraction
all cut text at the same places, so a quote never straddles what a chunk boundary split.

A boundary is end punctuation (and closing quotes or brackets), blanks, then something
that can start a sentence; a line break always ends one. A period after a known
abbreviation or a single letter ("e.g.", "J. Smith") does not.
"""

from __future__ import annotations

import itertools
import re

# A boundary: end punctuation (and closing quotes or brackets), whitespace, then something
# that can start a sentence. Newlines always end one.
_BOUNDARY = re.compile(r"""(?<=[.!?])["')\]]*\s+(?=["'(\[]?[A-Z0-9])|\n\s*""")
# Abbreviations after which a period does not end a sentence.
_ABBREVIATIONS = frozenset(
    "e.g i.e mr mrs ms dr prof st jr sr inc ltd co corp no vs etc fig al approx u.s u.k".split()
)
_LAST_WORD = re.compile(r"([\w.]+)\.$")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Spans ``(start, end)`` of the sentences of ``text``, whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.start()
        piece = text[start:end].rstrip()
        last = _LAST_WORD.search(piece)
        is_abbreviation = last is not None and (
            last.group(1).lower() in _ABBREVIATIONS or len(last.group(1)) == 1
        )
        if "\n" not in match.group() and is_abbreviation:
            continue
        _add(text, start, match.end() if "\n" in match.group() else match.start(), spans)
        start = match.end()
    _add(text, start, len(text), spans)
    return spans


def _add(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        lead = len(piece) - len(piece.lstrip())
        spans.append((start + lead, start + lead + len(stripped)))


def sentence_pieces(text: str) -> list[str]:
    """``text`` cut at the start of each sentence: the pieces, blanks included, join back to
    exactly ``text`` (what a splitter that merges pieces into chunks needs)."""
    cuts = [start for start, _ in split_sentences(text)[1:]]
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]
