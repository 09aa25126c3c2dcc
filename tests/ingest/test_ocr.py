"""OCR with the real Tesseract on scans of known text, made at run time (tests/ingest/ocr_files.py):
every image format, multi-page TIFF, PDFs mixing text-layer and scanned pages, confidence,
and hostile or broken input that must fail alone, with its process killed when it overruns."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from core.errors import CorruptDocument, EmptyDocument, TooLarge, UnsupportedType
from core.settings import OcrSettings
from core.types import ParsedDocument
from ingest.ocr import PageImage, Tesseract, parse_tsv
from ingest.parse import parse_file
from tests.conftest import shared
from tests.ingest import ocr_files
from tests.ingest.ocr_files import text_image

LIMITS = {"max_bytes": 50_000_000, "max_pages": 100}
OCR = OcrSettings(workers=2)

LINES = ["Quarterly inventory of the Lisbon warehouse", "Forklift batteries replaced in March"]


def parse(path: Path, ocr: OcrSettings = OCR) -> ParsedDocument:
    return parse_file(path, ocr=ocr, **LIMITS)


def words(text: str) -> str:
    return " ".join(text.split()).lower()


@pytest.fixture(scope="module")
def page() -> Image.Image:
    return text_image(LINES)


# -- images ----------------------------------------------------------------------------------


def test_a_png_is_read_with_its_page_and_confidence(tmp_path: Path, page: Image.Image) -> None:
    parsed = parse(ocr_files.save(page, tmp_path / "memo.png"))
    assert "quarterly inventory of the lisbon warehouse" in words(parsed.text)
    assert "forklift batteries replaced in march" in words(parsed.text)
    assert parsed.page_count == 1 and parsed.filetype == "png" and parsed.title == "memo"
    assert all(e.ocr and e.page == 1 for e in parsed.elements)
    [record] = parsed.ocr_pages
    assert record.page == 1 and record.words == 11 and not record.error
    assert record.confidence is not None and record.confidence > 80
    for e in parsed.elements:  # elements index into the text
        assert parsed.text[e.char_start:e.char_end] == e.text


@pytest.mark.parametrize(("suffix", "params"), [
    (".jpg", {"quality": 80}), (".jpeg", {}), (".bmp", {}), (".webp", {"lossless": True}),
    (".gif", {}), (".tif", {"compression": "tiff_lzw"}),
])
def test_every_image_format_is_read(tmp_path: Path, page: Image.Image, suffix: str,
                                    params: dict[str, object]) -> None:
    picture = page.convert("RGB") if suffix in (".jpg", ".webp") else page
    parsed = parse(ocr_files.save(picture, tmp_path / f"memo{suffix}", **params))
    assert "lisbon warehouse" in words(parsed.text), suffix


def test_each_page_of_a_multi_page_tiff_is_a_page(tmp_path: Path) -> None:
    pages = [text_image([f"Section {name} of the audit"]) for name in ("alpha", "bravo", "delta")]
    path = tmp_path / "fax.tiff"
    pages[0].save(path, save_all=True, append_images=pages[1:], compression="tiff_deflate")
    parsed = parse(path)
    assert parsed.page_count == 3 and [p.page for p in parsed.ocr_pages] == [1, 2, 3]
    by_page = {e.page: words(e.text) for e in parsed.elements}
    assert "alpha" in by_page[1] and "bravo" in by_page[2] and "delta" in by_page[3]


def test_a_small_image_is_enlarged_before_ocr(tmp_path: Path) -> None:
    # A page saved at screen resolution: 9-point text at 72 dpi, letters a few pixels high.
    lines = [*LINES, "The loading bay closes at six on Fridays"]
    parsed = parse(ocr_files.save(text_image(lines, dpi=72, points=9), tmp_path / "screen.png"))
    assert "lisbon warehouse" in words(parsed.text) and "loading bay closes" in words(parsed.text)
    assert (parsed.ocr_pages[0].confidence or 0) > 85  # about 66 as it is


def test_a_transparent_png_is_read_on_white(tmp_path: Path, page: Image.Image) -> None:
    # Black text on a transparent background: flattened on black it would be all black.
    rgba = Image.new("RGBA", page.size, (0, 0, 0, 0))
    rgba.putalpha(page.point(lambda v: 255 - v))
    assert "lisbon warehouse" in words(parse(ocr_files.save(rgba, tmp_path / "clip.png")).text)


def test_heic(tmp_path: Path, page: Image.Image) -> None:
    from pi_heif import register_heif_opener

    register_heif_opener()
    path = tmp_path / "photo.heic"
    try:
        page.convert("RGB").save(path, "HEIF", quality=90)
    except (KeyError, ValueError, OSError):
        # pi-heif reads HEIC but is built without an encoder: a real photo of a page then.
        parsed = parse(shared("parsing", "unstructured", "docs", "img", "DA-1p.heic"))
        assert parsed.ocr_pages and parsed.ocr_pages[0].words > 100
        assert "we arrived in the dead of night" in words(parsed.text)
        return
    assert "lisbon warehouse" in words(parse(path).text)


def test_an_image_without_text_is_empty(tmp_path: Path) -> None:
    with pytest.raises(EmptyDocument, match="OCR found no text"):
        parse(ocr_files.save(Image.new("L", (800, 600), 255), tmp_path / "blank.png"))


def test_ocr_turned_off_refuses_images(tmp_path: Path, page: Image.Image) -> None:
    with pytest.raises(UnsupportedType, match="ENCLAVE_OCR__ENABLED"):
        parse(ocr_files.save(page, tmp_path / "memo.png"), OcrSettings(enabled=False))


def test_a_missing_language_is_named(tmp_path: Path, page: Image.Image) -> None:
    with pytest.raises(UnsupportedType, match="language data not installed: xyz"):
        parse(ocr_files.save(page, tmp_path / "memo.png"), OcrSettings(languages="eng+xyz"))


# -- PDFs ------------------------------------------------------------------------------------


def test_a_pdf_mixing_text_and_scanned_pages_keeps_each_page(tmp_path: Path) -> None:
    text_page = ["The text layer of page one names the Oslo office and its budget of "
                 "four hundred thousand euros for the coming year."]
    scan = text_image(["Scanned page two: the Porto office lease"], size_in=(8.5, 11))
    stamped = text_image(["Page three holds the Ghent invoice"], size_in=(8.5, 11))
    path = ocr_files.pdf(tmp_path / "mixed.pdf", [(text_page, None), ([], scan),
                                                  (["3"], stamped)])
    parsed = parse(path)
    by_page: dict[int | None, list[str]] = {}
    for e in parsed.elements:
        by_page.setdefault(e.page, []).append(words(e.text))
    assert "oslo office" in " ".join(by_page[1])
    assert "porto office lease" in " ".join(by_page[2])
    assert "ghent invoice" in " ".join(by_page[3])  # a stamped page number is not a text layer
    assert [p.page for p in parsed.ocr_pages] == [2, 3]
    assert not any(e.ocr for e in parsed.elements if e.page == 1)
    assert all(e.ocr for e in parsed.elements if e.page in (2, 3))
    assert parsed.page_count == 3


def test_a_short_page_that_is_all_text_layer_keeps_it(tmp_path: Path) -> None:
    # Under min_text_chars, so it is OCR'd too; OCR reads no more than the layer holds.
    path = ocr_files.pdf(tmp_path / "end.pdf", [(["Thank you."], None)])
    parsed = parse(path)
    assert parsed.text == "Thank you." and parsed.ocr_pages == ()
    assert not any(e.ocr for e in parsed.elements)


def test_a_scanned_pdf_from_the_corpus_ingests() -> None:
    parsed = parse(shared("parsing", "unstructured", "docs", "pdf", "loremipsum-flat.pdf"))
    assert "lorem ipsum" in words(parsed.text)
    assert parsed.ocr_pages and all(e.ocr for e in parsed.elements)


def test_a_page_that_fails_to_render_is_left_out_alone(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import pypdfium2 as pdfium

    pages = [([], text_image([f"Ledger {name} reconciled"], size_in=(8.5, 11)))
             for name in ("north", "south")]
    path = ocr_files.pdf(tmp_path / "ledgers.pdf", pages)
    render = pdfium.PdfPage.render
    calls = []

    def broken_second(self: pdfium.PdfPage, *args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise pdfium.PdfiumError("Failed to render page.")
        return render(self, *args, **kwargs)

    monkeypatch.setattr(pdfium.PdfPage, "render", broken_second)
    parsed = parse(path)
    assert "ledger north reconciled" in words(parsed.text) and "south" not in words(parsed.text)
    assert parsed.ocr_pages[1].error.startswith("corrupt: page 2 could not be rendered")
    assert parsed.ocr_pages[1].low(60.0) and not parsed.ocr_pages[0].low(60.0)

    calls.clear()
    single = ocr_files.pdf(tmp_path / "one.pdf", pages[1:])
    calls.append(1)  # its only page is the second render
    with pytest.raises(CorruptDocument, match="page 1 could not be rendered"):
        parse(single)


def test_ocr_turned_off_leaves_a_scan_empty_and_says_why(tmp_path: Path) -> None:
    path = ocr_files.pdf(tmp_path / "scan.pdf", [([], text_image(LINES, size_in=(8.5, 11)))])
    with pytest.raises(EmptyDocument, match="OCR is turned off"):
        parse(path, OcrSettings(enabled=False))


def test_a_huge_pdf_page_is_rendered_within_the_pixel_budget() -> None:
    from ingest.scans import _scale

    budget = OcrSettings(max_pixels=10_000_000)
    scale = _scale((14_400.0, 14_400.0), budget)  # 200 x 200 inches
    assert (14_400 * scale) ** 2 <= 10_000_000 * 1.001
    assert _scale((612.0, 792.0), budget) == pytest.approx(300 / 72)


# -- bad input -------------------------------------------------------------------------------


def test_an_image_bomb_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(TooLarge):
        parse(ocr_files.png_bomb(tmp_path / "bomb.png"))
    assert time.perf_counter() - started < 5  # nothing was decoded
    # Under Pillow's own limit but over ours: refused by the header's size.
    big = ocr_files.png_bomb(tmp_path / "big.png", 5000, 4000)
    with pytest.raises(TooLarge, match="5000x4000 pixels is over the 10-megapixel limit"):
        parse(big, OcrSettings(max_pixels=10_000_000))


def test_a_truncated_image_is_corrupt(tmp_path: Path, page: Image.Image) -> None:
    for suffix in (".png", ".jpg"):
        path = ocr_files.truncated(ocr_files.save(page, tmp_path / f"cut{suffix}"), 0.4)
        with pytest.raises(CorruptDocument, match=r"truncated or damaged image|not a readable"):
            parse(path)


def test_garbage_named_as_an_image_is_corrupt(tmp_path: Path) -> None:
    (tmp_path / "notes.heic").write_bytes(b"this is not a picture at all" * 10)
    with pytest.raises(CorruptDocument, match=r"not a readable \.heic image"):
        parse(tmp_path / "notes.heic")


# -- the engine: time limits kill the process ------------------------------------------------


@pytest.fixture
def mark(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A marker in the environment Tesseract inherits, to find its processes afterwards."""
    value = f"ocr-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("ENCLAVE_TEST_MARK", value)
    yield value


def _noise(size: int = 2600) -> Image.Image:
    """Random dots: Tesseract takes seconds over a page of them (about 4 s here)."""
    import numpy as np

    rng = np.random.default_rng(3)
    return Image.fromarray((rng.random((size, size)) > 0.5).astype(np.uint8) * 255, "L")


def _gone(mark: str, within_s: float = 0.5) -> bool:
    deadline = time.monotonic() + within_s
    while ocr_files.marked_processes(mark):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_page_past_its_time_limit_is_killed_and_left_unread(tmp_path: Path, mark: str) -> None:
    path = ocr_files.save(_noise(), tmp_path / "noise.png")
    started = time.perf_counter()
    with pytest.raises(TooLarge, match=r"longer than the 0\.5 s page limit"):
        parse(path, OcrSettings(page_timeout_s=0.5, workers=1))
    assert time.perf_counter() - started < 2.5  # not the seconds the page would have taken
    assert _gone(mark), "a Tesseract process outlived its page's time limit"


class _Deadline(Exception):
    """Stands in for Celery's SoftTimeLimitExceeded, raised by a signal in the main thread."""


def test_a_time_limit_striking_mid_page_kills_every_process(mark: str) -> None:
    engine = Tesseract(OcrSettings(workers=2, page_timeout_s=120))
    pages = [PageImage(n, _noise()) for n in (1, 2, 3)]

    def strike(*_: object) -> None:
        raise _Deadline()

    previous = signal.signal(signal.SIGALRM, strike)
    signal.setitimer(signal.ITIMER_REAL, 0.7)
    started = time.perf_counter()
    try:
        with pytest.raises(_Deadline):
            for _ in engine.read(pages):
                pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    # Stopped when the limit struck (0.7 s), not when the pages would have been read.
    assert time.perf_counter() - started < 2.5
    assert _gone(mark), "Tesseract kept running after the time limit struck"


def test_tesseract_tsv_becomes_paragraphs_and_a_mean_confidence() -> None:
    header = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"
    rows = [
        "5\t1\t1\t1\t1\t1\t0\t0\t1\t1\t90.0\tHello",
        "5\t1\t1\t1\t1\t2\t0\t0\t1\t1\t70.0\tworld",
        "5\t1\t1\t1\t2\t1\t0\t0\t1\t1\t80.0\tagain",
        "4\t1\t1\t1\t2\t0\t0\t0\t1\t1\t-1\t",
        "5\t1\t2\t1\t1\t1\t0\t0\t1\t1\t-1\t ",
        "5\t1\t2\t1\t1\t2\t0\t0\t1\t1\t20.0\tbye",
    ]
    read = parse_tsv(4, "\n".join([header, *rows]))
    assert read.paragraphs == ("Hello world\nagain", "bye")
    assert (read.page, read.words, read.confidence) == (4, 4, 65.0)
    assert parse_tsv(1, header).confidence is None
