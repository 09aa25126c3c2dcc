"""Dot leaders and speckled scans, read by the real Tesseract on pages rendered at run time
(eval/scanned.py), and the pixel logic around it on drawn boxes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from rapidfuzz.distance import Levenshtein

from core.settings import OcrSettings
from eval.scanned import Page, degrade, paginate, render
from ingest.denoise import NOISY_SIGMA, despeckle, noise_sigma
from ingest.leaders import Word, restore_line
from ingest.ocr import PageImage, Tesseract, _pnm, _Run, parse_tsv

OCR = OcrSettings(workers=2)
# A table of contents as scanned books print it: entries run on, each title joined to its
# page number by spaced dots or packed ones. (Tesseract's layout analysis loses a right-hand
# column of page numbers altogether when every entry has a line of its own: not handled.)
CONTENTS = " ".join([
    "Contents. RETENTION 3 Scope of the retention policy " + ". " * 22 + "3",
    "Records kept for seven years " + ". " * 40 + "4 BACKUPS 6",
    "Backups and their rotation " + ". " * 31 + "7 Who may approve a deletion "
    + "." * 40 + " 9 Legal holds and their release " + ". " * 29 + "12",
])
BODY = ("Each department keeps its invoices for seven years after the end of the financial "
        "year. Payroll records are kept for ten years. A legal hold stops every deletion of "
        "the records it names until the hold is released in writing by the general counsel.")


def cer(read: str, truth: str) -> float:
    seen, want = " ".join(read.split()), " ".join(truth.split())
    return Levenshtein.distance(seen, want) / len(want)


def one_page(text: str) -> Page:
    [page] = paginate(text)
    return page


def read_raw(image: Image.Image, tesseract: Tesseract) -> str:
    """Tesseract's own words for the page, with no cleaning and no look at the pixels."""
    tsv = tesseract._page(_Run(), PageImage(1, None, dpi=300), _pnm(image))
    return " ".join(tsv.paragraphs)


def test_dot_leaders_are_read_as_dots_not_letters() -> None:
    page = one_page(CONTENTS)
    image = render(page)
    tesseract = Tesseract(OCR)
    [read] = list(tesseract.read([PageImage(1, image, dpi=300)]))
    text = " ".join(" ".join(read.paragraphs).split())
    raw = read_raw(image, tesseract)
    assert cer(text, page.text) < cer(raw, page.text) / 2, (text, raw)
    assert cer(text, page.text) < 0.08, text
    # Tesseract's guesses at the dots are gone, and the titles and page numbers stay.
    assert not {"eee", "ee", "ene", "Le"} & set(text.split()), text
    for title in ("Scope of the retention policy", "Backups and their rotation",
                  "Legal holds and their release"):
        assert title in text
    assert ". . . . . . . . . . 4" in text and "12" in text


def test_a_noisy_scan_is_despeckled_and_read_better() -> None:
    page = one_page(BODY)
    noisy = degrade(render(page, 200), seed=3)
    clean = render(page, 200)
    assert noise_sigma(clean) < NOISY_SIGMA < noise_sigma(noisy)
    assert despeckle(clean) is clean  # a clean page goes to Tesseract untouched
    tesseract = Tesseract(OCR)
    [read] = list(tesseract.read([PageImage(1, noisy, dpi=200)]))
    raw = read_raw(noisy, tesseract)
    assert cer(" ".join(read.paragraphs), page.text) < cer(raw, page.text), (read, raw)


# -- the pixel logic -------------------------------------------------------------------------

HEIGHT = 40  # the letters' height in the drawn lines


def canvas() -> np.ndarray:
    return np.zeros((100, 1200), dtype=bool)


def letters(ink: np.ndarray, left: int, right: int) -> Word:
    for x in range(left, right, 12):  # letter-like strokes: tall and narrow
        ink[30:70, x:x + 6] = True
    return Word(left, 30, right - left, HEIGHT, 95.0, "Title")


def dots(ink: np.ndarray, left: int, right: int, pitch: int) -> None:
    for x in range(left, right, pitch):
        ink[64:70, x:x + 6] = True


def test_spaced_and_packed_dots_are_written_as_the_page_spaces_them() -> None:
    ink = canvas()
    title = letters(ink, 10, 200)
    dots(ink, 220, 400, 24)  # gaps three dots wide: ". . ."
    dots(ink, 420, 600, 9)  # gaps half a dot wide: "..."
    number = letters(ink, 640, 660)
    flat = Word(220, 64, 380, 6, 12.0, "eee ene")  # what Tesseract guessed over the dots
    line = restore_line([title, flat, replace_text(number, "42")], ink, HEIGHT)
    assert line[0] == "Title" and line[-1] == "42"
    assert line[1].startswith(". . . .") and "......" in line[1]
    assert "eee" not in " ".join(line)


def test_dots_glued_to_a_word_are_cut_off_and_counted() -> None:
    ink = canvas()
    letters(ink, 10, 200)
    dots(ink, 206, 400, 24)
    glued = Word(10, 30, 390, HEIGHT, 70.0, "Synthesis.............")
    [word, leader] = restore_line([glued], ink, HEIGHT)
    assert word == "Synthesis"
    assert leader == ". " * 8 + "."


def test_a_stretch_holding_more_than_dots_keeps_what_tesseract_read() -> None:
    ink = canvas()
    title = letters(ink, 10, 200)
    dots(ink, 220, 300, 24)
    ink[30:70, 320:330] = True  # a letter-sized mark among the dots
    flat = Word(220, 64, 110, 6, 12.0, "x")
    number = letters(ink, 640, 660)
    assert restore_line([title, flat, replace_text(number, "7")], ink, HEIGHT) == [
        "Title", "x", "7"]


def test_specks_between_words_are_not_dots() -> None:
    ink = canvas()
    title = letters(ink, 10, 200)
    for x in (250, 300, 350, 420):
        ink[66, x] = True  # single-pixel specks
    number = letters(ink, 640, 660)
    assert restore_line([title, replace_text(number, "7")], ink, HEIGHT) == ["Title", "7"]


def test_without_the_image_the_tsv_is_taken_as_it_is() -> None:
    header = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"
    rows = ["5\t1\t1\t1\t1\t1\t0\t30\t100\t40\t95\tTitle",
            "5\t1\t1\t1\t1\t2\t120\t64\t200\t6\t9\teee"]
    assert parse_tsv(1, "\n".join([header, *rows])).paragraphs == ("Title eee",)


def replace_text(word: Word, text: str) -> Word:
    return Word(word.left, word.top, word.width, word.height, word.confidence, text)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_noise_is_measured_in_any_mode(mode: str) -> None:
    blank = Image.new(mode, (50, 50), "white")
    assert noise_sigma(blank) == 0.0
