"""Dot leaders, read from the page's pixels instead of Tesseract's guesses.

Tables of contents, forms and price lists join a title to its page number with rows of
dots. Tesseract's line recogniser reads a row of small dots as letters ("eee ene Le") at
near-zero confidence, drops some of them, or glues them to the word before
("Synthesis........"). Those letters pollute keyword search and quoted citations. A dot
is easy to recognise in the picture, though: a small blob of ink whose height is a
fraction of the line's letters. So within each line, every stretch that Tesseract left
between real words, or filled with such flat "words", is measured again on the page: when
it holds dots and nothing else, its text becomes those dots, spaced as the page spaces
them (". . ." or "..."). A stretch that holds anything else keeps what Tesseract read.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

# A "word" this much flatter than the page's letters holds no letters (dots, a rule).
FLAT = 0.35
# A dot's width and height at most, as a share of the page's letter height.
_DOT = 0.35
# A stretch narrower than this (a share of the letter height) is an ordinary word gap.
_WIDE_GAP = 1.2
_MIN_DOTS = 3
_TRAILING_DOTS = re.compile(r"(?:\.|…|·){3,}$")


@dataclass(frozen=True, slots=True)
class Word:
    """One word of Tesseract's TSV, with its box in page pixels."""

    left: int
    top: int
    width: int
    height: int
    confidence: float
    text: str

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height


def letter_height(words: Sequence[Word]) -> float | None:
    """The page's typical word height, from the words Tesseract is sure of."""
    sure = [w.height for w in words if w.confidence >= 60 and len(w.text) >= 2
            and not _TRAILING_DOTS.fullmatch(w.text)]
    return float(statistics.median(sure)) if sure else None


def restore_line(words: Sequence[Word], ink: NDArray[np.bool_], height: float) -> list[str]:
    """The line's words, dot leaders rewritten from ``ink`` (True where the page is dark)."""
    kept: list[Word] = []  # words with letters, trailing dots cut off
    for word in words:
        if _is_leader(word, ink, height):
            continue  # its stretch is measured below
        match = _TRAILING_DOTS.search(word.text)
        if match and match.start() > 0:
            end = _letters_end(word, ink, height)
            if end is not None:
                word = replace(word, width=end - word.left, text=word.text[:match.start()])
        kept.append(word)
    if len(kept) == len(words) and not any(_TRAILING_DOTS.search(w.text) for w in words):
        return [w.text for w in words]
    if not kept:
        # A line of dots alone: the whole line is one stretch.
        top, bottom = min(w.top for w in words), max(w.bottom for w in words)
        dots = _dots(ink, top, bottom, min(w.left for w in words),
                     max(w.right for w in words), height)
        return [dots] if dots else [w.text for w in words]
    top = min(w.top for w in kept)
    bottom = max(w.bottom for w in kept)
    out: list[str] = []
    edges = [min(w.left for w in words)] + [w.right for w in kept]
    starts = [w.left for w in kept] + [max(w.right for w in words)]
    for n, (gap_from, gap_to) in enumerate(zip(edges, starts, strict=True)):
        if gap_to - gap_from >= _WIDE_GAP * height:
            dots = _dots(ink, top, bottom, gap_from, gap_to, height)
            if dots:
                out.append(dots)
            else:  # something else is there: what Tesseract read in the stretch stays
                out += [w.text for w in words if w not in kept
                        and gap_from <= w.left < gap_to]
        elif gap_to > gap_from:
            out += [w.text for w in words if w not in kept and gap_from <= w.left < gap_to
                    and not _is_flat(w, height)]
        if n < len(kept):
            out.append(kept[n].text)
    return [t for t in out if t]


def needs_look(word: Word, height: float) -> bool:
    """Whether a word may be (part of) a dot leader, worth a look at the pixels: flat, unsure
    (Tesseract's guesses at dots score near zero), or ending in dots."""
    return (_is_flat(word, height) or word.confidence < 50
            or _TRAILING_DOTS.search(word.text) is not None)


def _is_flat(word: Word, height: float) -> bool:
    return word.height < FLAT * height


def _is_leader(word: Word, ink: NDArray[np.bool_], height: float) -> bool:
    """A word that holds nothing but dots: flat, or inked with dots alone. A word of one or
    two dots that reads as such is punctuation, and stays."""
    if _is_flat(word, height):
        return True
    if not needs_look(word, height) or (set(word.text) <= {"."} and len(word.text) < _MIN_DOTS):
        return False
    runs = _significant(_runs(ink, word.top, word.bottom, word.left, word.right), height)
    return bool(runs) and all(_is_dot(rows, end - start, height) for start, end, rows in runs)


def _letters_end(word: Word, ink: NDArray[np.bool_], height: float) -> int | None:
    """Where the letters of a word that ends in dots end (page x), or None if unsure."""
    runs = _runs(ink, word.top, word.bottom, word.left, word.right)
    dots = 0
    for start, _end, rows in reversed(runs):
        if not _is_dot(rows, _end - start, height):
            break
        dots += 1
    if dots < _MIN_DOTS or dots == len(runs):
        return None
    return runs[len(runs) - dots - 1][1]


def _dots(ink: NDArray[np.bool_], top: int, bottom: int, left: int, right: int,
          height: float) -> str | None:
    """The dots between ``left`` and ``right`` as text, or None unless dots are all there is."""
    runs = _significant(_runs(ink, top, bottom, left, right), height)
    if len(runs) < _MIN_DOTS or not all(_is_dot(rows, end - start, height)
                                        for start, end, rows in runs):
        return None
    width = statistics.median(end - start for start, end, _ in runs)
    text = "."
    for (_, before, _), (after, _, _) in itertools.pairwise(runs):
        text += " ." if after - before > 1.5 * width else "."
    return text


def _significant(runs: list[tuple[int, int, int]], height: float) -> list[tuple[int, int, int]]:
    """The runs that are not specks of scanner noise (neither dots nor letters)."""
    speck = max(2, round(0.06 * height))
    return [r for r in runs if r[1] - r[0] >= speck and r[2] >= speck]


def _is_dot(rows: int, width: int, height: float) -> bool:
    return rows <= _DOT * height and width <= _DOT * height


def _runs(ink: NDArray[np.bool_], top: int, bottom: int, left: int,
          right: int) -> list[tuple[int, int, int]]:
    """Runs of inked columns in the box: (start x, end x, rows spanned by their ink)."""
    import numpy as np

    box = ink[max(0, top):max(0, bottom), max(0, left):max(0, right)]
    if box.size == 0:
        return []
    columns = box.any(axis=0)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], columns.astype(np.int8), [0]))))
    runs = []
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        rows = np.flatnonzero(box[:, start:end].any(axis=1))
        runs.append((int(start) + max(0, left), int(end) + max(0, left),
                     int(rows[-1] - rows[0] + 1)))
    return runs
