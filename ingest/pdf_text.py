"""A PDF's text layer read by pdfium (pypdfium2), into the elements ingest/parse.py places.

pdfminer's layout analysis, behind unstructured's ``fast`` strategy, was most of the
time an ingest spent; pdfium reads the same text layer many times faster (eval/bench_pdf.py).
pdfium already breaks a page's characters into lines; the lines are grouped here into
blocks by their geometry (a vertical gap wider than the line spacing, a change of font
size, a bullet, a short line ending a sentence), and each block becomes an element:
a block of figure rows is a Table, one row a line with its columns (split where pdfium's
characters leave a wide gap) separated by `` | `` as parse.py renders every table; any
other block is classified by unstructured's text classifier (``element_from_text``, the
one ``partition_text`` and the pdfminer path use), so titles, narrative text and list
items keep their categories. Every element carries its page number.

pdfium is not thread-safe, and parsing runs in a thread beside embedding: every pdfium
call holds :data:`PDFIUM_LOCK`, one page at a time, and every document, page and text
page is closed before the lock is released (never left to a finalizer in another thread).
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.errors import EncryptedDocument

log = logging.getLogger(__name__)

PdfText = Literal["pdfium", "pdfminer"]

PDFIUM_LOCK = threading.Lock()
# A pdfium call that never returns (a hostile file, its thread abandoned by the parse time
# limit) keeps the lock: the documents after it are read by pdfminer rather than queueing.
_LOCK_WAIT_S = 30.0

# A gap between two words wider than this share of the line's height separates columns:
# on the 10-Q corpus 92% of word gaps are under 0.5 and the valley lies at 0.6-0.9.
_COLUMN_GAP = 0.8
# A gap between lines wider than the page's usual spacing plus this share of the line
# height starts a new block (a paragraph, a blank table row).
_BLOCK_GAP = 0.4
# Lines whose heights differ by more than this share are in different fonts sizes.
_SIZE_CHANGE = 0.15
_FIGURE = re.compile(r"^[(\[]?[-+\u2212]?[$\u20ac\u00a3\u00a5]?\s*(?:\d[\d,.]*|[\u2014\u2013-])\s*%?[)\]]?"
                     r"(?:\s*\(\d{1,2}\))?$")
_CURRENCY = frozenset("$\u20ac\u00a3\u00a5")
# Bullets, the dash some lists use, and the Symbol and Wingdings bullets Word embeds.
_BULLET = re.compile("^[\u2022\u25cf\u25aa\u25a0\u25e6\u2023\u2043\u2219\u00b7\u25cb\u27a2\u2013*"
                     "\uf0b7\uf0a7]")
_WORD_GAP = re.compile(r"(?<=\S)\s+(?=\S)")
_LINE = re.compile(r"[^\r\n]+")
_SENTENCE_END = frozenset(".!?")
# A word hyphenated across lines: pdfium mostly joins the lines itself, the hyphen marked
# U+FFFE (dropped here: "ap\ufffeplied" is "applied"); where it does not, the line ends with
# U+0002 (its mark for a hyphen), a soft hyphen or a plain one.
_JOINED = "\ufffe"
_HYPHENS = ("\x02", "\u00ad", "-")
_LIGATURES = str.maketrans({"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi",
                            "\ufb04": "ffl", "\ufb05": "st", "\ufb06": "st"})
# Control characters are layout debris (form feeds, pdfium's markers), except NUL, which
# parse.py's guard counts (a page of NULs is binary garbage, not text), and U+0002 above.
_CONTROLS = re.compile("[\x01\x03-\x08\x0b-\x1f\x7f\uffff]")


@dataclass(frozen=True, slots=True)
class _Line:
    cells: tuple[str, ...]  # the line's text, split where its words leave a column's gap
    left: float
    right: float
    bottom: float  # of its last character: pdfium joins a word hyphenated across lines
    top: float  # of its first
    height: float  # of its first character's font: the line's type size

    @property
    def text(self) -> str:
        return " ".join(self.cells)


@dataclass(frozen=True, slots=True)
class _Page:
    number: int
    width: float
    height: float
    lines: tuple[_Line, ...]
    text: str | None = None  # set instead of lines when pdfium's characters lack positions


def pdf_elements(path: Path) -> list[Any] | None:
    """unstructured elements of the PDF's text layer, page by page; None when pdfium
    cannot open the file (pdfminer is more forgiving, and names what is wrong).

    Raises :class:`core.errors.EncryptedDocument` for a PDF that needs a password.
    """
    if not PDFIUM_LOCK.acquire(timeout=_LOCK_WAIT_S):
        log.warning("pdfium has been busy for %g s; pdfminer reads %s", _LOCK_WAIT_S, path.name)
        return None
    try:
        pdf = _open(path)
        count = len(pdf) if pdf is not None else 0
    finally:
        PDFIUM_LOCK.release()
    if pdf is None:
        return None
    elements: list[Any] = []
    try:
        for number in range(1, count + 1):
            # One page per hold of the lock, so other threads' pdfium work interleaves;
            # the page is classified (spaCy, no pdfium) outside it.
            with PDFIUM_LOCK:
                page = _read_page(pdf, number)
            if page is not None:
                elements.extend(_page_elements(page))
    finally:
        with PDFIUM_LOCK:
            pdf.close()
    return elements


def _open(path: Path) -> Any:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        return pdfium.PdfDocument(str(path))
    except (pdfium.PdfiumError, OSError, ValueError) as exc:
        if getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise EncryptedDocument("password-protected PDF") from exc
        log.info("pdfium cannot open %s (%s); pdfminer will try", path.name, exc)
        return None


def _read_page(pdf: Any, number: int) -> _Page | None:
    import pypdfium2 as pdfium

    try:
        page = pdf[number - 1]
    except (pdfium.PdfiumError, IndexError, ValueError) as exc:
        # Left out: the page then counts as thin, and OCR tries to render it.
        log.info("pdfium cannot load page %d: %s", number, exc)
        return None
    try:
        width, height = page.get_size()
        textpage = page.get_textpage()
        try:
            count = textpage.count_chars()
            text = textpage.get_text_range(0, count) if count > 0 else ""
            if len(text) != count:
                # pdfium left characters out or put some in: text and boxes no longer line
                # up, so the page's text goes to unstructured's plain-text partitioner.
                return _Page(number, width, height, (), textpage.get_text_bounded())
            return _Page(number, width, height, tuple(_lines(textpage.raw, text)))
        finally:
            textpage.close()
    except pdfium.PdfiumError as exc:
        log.info("pdfium cannot read the text of page %d: %s", number, exc)
        return None
    finally:
        page.close()


def _lines(textpage: Any, text: str) -> list[_Line]:
    """Each of pdfium's lines with its box (loose boxes: the font's full height, the same
    for every character of a line) and its columns."""
    import pypdfium2.raw as pdfium_c

    box = pdfium_c.FS_RECTF()

    def edges(index: int) -> tuple[float, float, float, float]:
        pdfium_c.FPDFText_GetLooseCharBox(textpage, index, box)
        return box.left, box.right, box.bottom, box.top

    lines: list[_Line] = []
    for match in _LINE.finditer(text):
        line = match.group(0)
        if not line.strip():
            continue
        first = match.start() + len(line) - len(line.lstrip())
        last = match.start() + len(line.rstrip()) - 1
        left, _, low, top = edges(first)
        height = max(top - low, 1e-3)
        _, right, bottom, _ = edges(last)
        cells: list[str] = []
        start = first
        for gap in _WORD_GAP.finditer(text, first, last + 1):
            before, after = edges(gap.start() - 1)[1], edges(gap.end())[0]
            if after - before >= _COLUMN_GAP * height:
                cells.append(text[start : gap.start()])
                start = gap.end()
        cells.append(text[start : last + 1])
        piece = _Line(_merge_cells(cells), left, right, min(bottom, low), top, height)
        if lines and _continues(lines[-1], piece):
            lines[-1] = _joined(lines[-1], piece)
        elif piece.cells:
            lines.append(piece)
    return lines


def _continues(line: _Line, piece: _Line) -> bool:
    """pdfium starts a new line at a superscript or a change of font; a piece that sits
    beside the line, to its right, is more of it."""
    size = min(line.height, piece.height)
    overlap = min(line.top, piece.top) - max(line.bottom, piece.bottom)
    return overlap > 0.5 * size and piece.left >= line.right - 0.5 * size and bool(piece.cells)


def _joined(line: _Line, piece: _Line) -> _Line:
    gap = piece.left - line.right
    if gap >= _COLUMN_GAP * line.height or not line.cells:
        cells = line.cells + piece.cells
    else:
        space = " " if gap > 0.15 * line.height else ""
        cells = (*line.cells[:-1], f"{line.cells[-1]}{space}{piece.cells[0]}", *piece.cells[1:])
    return _Line(cells, line.left, piece.right, min(line.bottom, piece.bottom), max(line.top, piece.top),
                 line.height)


def _merge_cells(cells: Sequence[str]) -> tuple[str, ...]:
    # A currency sign set flush left in its column belongs to the figure right of it.
    merged: list[str] = []
    for cell in (c for c in (_clean(c) for c in cells) if c):
        if merged and merged[-1] in _CURRENCY:
            merged[-1] = f"{merged[-1]} {cell}"
        elif merged and cell in ("%", ")"):
            merged[-1] += cell
        else:
            merged.append(cell)
    return tuple(merged)


def _clean(text: str) -> str:
    return " ".join(_CONTROLS.sub(" ", text.translate(_LIGATURES).replace(_JOINED, "")).split())


# -- lines into elements ----------------------------------------------------------------------


def _page_elements(page: _Page) -> list[Any]:
    from unstructured.documents.coordinates import PixelSpace
    from unstructured.documents.elements import ElementMetadata, Table
    from unstructured.partition.text import element_from_text, partition_text

    from ingest import nlp

    nlp.install()  # the classifier's sentences and verbs, offline
    if page.text is not None:
        found = partition_text(text=_clean_lines(page.text))
        for element in found:
            element.metadata = ElementMetadata(page_number=page.number)
        return found
    system = PixelSpace(width=page.width, height=page.height)
    elements: list[Any] = []
    for block in _blocks(page.lines):
        if _is_table(block):
            rows = (" | ".join(line.cells) for line in block)
            element = Table(text="\n".join(rows).replace("\x02", "-"))
        else:
            text = _paragraph(block)
            if not text:
                continue
            # Where the block sits, as pdfminer's path tells it: near the top or bottom of
            # the page it is a header or footer.
            x1, x2 = min(line.left for line in block), max(line.right for line in block)
            y1 = page.height - max(line.top for line in block)
            y2 = page.height - min(line.bottom for line in block)
            points = ((x1, y1), (x1, y2), (x2, y2), (x2, y1))
            element = element_from_text(text, coordinates=points, coordinate_system=system)
        element.metadata = ElementMetadata(page_number=page.number)
        elements.append(element)
    return elements


def _clean_lines(text: str) -> str:
    return "\n".join(_clean(line).replace("\x02", "-") for line in _LINE.findall(text))


def _blocks(lines: Sequence[_Line]) -> Iterator[list[_Line]]:
    """Consecutive lines that read as one paragraph or one table."""
    if not lines:
        return
    gaps = sorted(a.bottom - b.top for a, b in itertools.pairwise(lines)
                  if -0.3 * a.height <= a.bottom - b.top <= 2 * a.height)
    usual = gaps[len(gaps) // 2] if gaps else 0.0
    block = [lines[0]]
    right = lines[0].right
    for previous, line in itertools.pairwise(lines):
        gap = previous.bottom - line.top
        height = max(previous.height, line.height)
        ended = (previous.text[-1:] in _SENTENCE_END and not _is_row(previous)
                 and previous.right < right - 3 * height)
        if (gap < -0.5 * height  # beside or above: another column, a table's header cell
                or gap > usual + _BLOCK_GAP * height
                or abs(previous.height - line.height) > _SIZE_CHANGE * height
                or _BULLET.match(line.text) is not None
                or ended):
            yield block
            block, right = [], line.right
        block.append(line)
        right = max(right, line.right)
    yield block


def _is_row(line: _Line) -> bool:
    """A table row: a label (or a figure) and at least one figure in columns of its own."""
    return len(line.cells) >= 2 and any(_FIGURE.match(cell) for cell in line.cells[1:])


def _is_table(block: Sequence[_Line]) -> bool:
    rows = sum(1 for line in block if _is_row(line))
    return rows > 0 and 2 * rows >= len(block)


def _paragraph(block: Sequence[_Line]) -> str:
    """The block's lines joined into one paragraph, words broken at a line's end mended."""
    text = ""
    for line in block:
        piece = line.text
        if text.endswith(_HYPHENS) and piece[:1].islower() and text[-2:-1].isalpha():
            text = text[:-1] + piece
        else:
            text = f"{text} {piece}" if text else piece
    # A hyphen pdfium marked that did not break a word (a compound split across lines).
    return text.replace("\x02", "-").strip()
