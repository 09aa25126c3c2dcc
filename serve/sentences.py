"""Sentence boundaries with character offsets, and the citation markers a model writes."""

from __future__ import annotations

import re

# A boundary: end punctuation (and closing quotes or brackets), whitespace, then something
# that can start a sentence. Newlines always end one.
_BOUNDARY = re.compile(r"""(?<=[.!?])["')\]]*\s+(?=["'(\[]?[A-Z0-9])|\n\s*""")
# Abbreviations after which a period does not end a sentence.
_ABBREVIATIONS = frozenset(
    "e.g i.e mr mrs ms dr prof st jr sr inc ltd co corp no vs etc fig al approx u.s u.k".split()
)
_LAST_WORD = re.compile(r"([\w.]+)\.$")

# [1], [1, 2], [1][2], [1-3]; also the full-width brackets some models write.
MARKER = re.compile(r"\s*[\[【]\s*(\d+(?:\s*[-–,;]\s*\d+)*)\s*[\]】]")


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


def markers(sentence: str) -> list[int]:
    """The passage numbers a sentence cites, in order, without repeats."""
    found: list[int] = []
    for match in MARKER.finditer(sentence):
        for part in re.split(r"\s*[,;]\s*", match.group(1)):
            bounds = [int(x) for x in re.split(r"\s*[-–]\s*", part) if x]
            numbers = range(bounds[0], bounds[-1] + 1) if len(bounds) == 2 else bounds
            for n in numbers:
                if n not in found and len(found) < 20:
                    found.append(n)
    return found


def strip_markers(sentence: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub("", sentence)).strip()


def answer_sentences(text: str) -> list[str]:
    """The sentences of a model's answer, each with the markers written right after it.

    Models often write a marker after the full stop ("... 1999. [2]"); such a marker
    belongs to the sentence before it.
    """
    out: list[str] = []
    for start, end in split_sentences(text):
        sentence = text[start:end]
        lead = re.match(rf"(?:{MARKER.pattern})+", sentence)
        if lead and out:
            out[-1] = f"{out[-1]} {lead.group().strip()}"
            sentence = sentence[lead.end() :].strip()
        if strip_markers(sentence):
            out.append(sentence)
        elif out and sentence:
            out[-1] = f"{out[-1]} {sentence}"
    return out
