"""Scans and images into a :class:`core.types.ParsedDocument`, through OCR (ingest/ocr.py).

Images: PNG, JPEG, TIFF (each page of a multi-page TIFF is a page), BMP, WebP, GIF (its
first frame) and HEIC/HEIF. PDFs: a page whose text layer is missing or thinner than
``min_text_chars`` is rendered (pypdfium2) and read by OCR; the other pages keep their
text layer, so one PDF may mix both. Every OCR'd element keeps its page and says it was
OCR'd; every OCR'd page records its confidence.

Hostile or broken input fails alone with a reason: an image whose header declares more
pixels than ``max_pixels`` is refused before it is decoded (a decompression bomb), a
truncated image or a page that cannot be rendered is "corrupt". A page that fails is
left out and recorded (and listed as low-confidence); the document fails only when no
page yields any text, with the first page's reason.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import CorruptDocument, DocumentError, EmptyDocument, TooLarge, UnsupportedType, one_line
from core.settings import OcrSettings
from core.types import Element, PageOcr, ParsedDocument
from ingest.ocr import PageImage, PageText, Tesseract

if TYPE_CHECKING:
    import pypdfium2 as pdfium
    from PIL.Image import Image

log = logging.getLogger(__name__)

IMAGE_TYPES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif",
                         ".heic", ".heif"})
# Formats whose frames are pages; in the others (an animated GIF or WebP) the first
# frame is the picture.
_PAGED = frozenset({".tif", ".tiff"})
_SEPARATOR = "\n\n"  # as ingest.parse joins elements
# An image smaller than this (its longest side, in pixels) is enlarged twice before OCR: a
# page saved at screen resolution has letters a few pixels high, which Tesseract misreads
# (a 612x792 scan of a paper: mean confidence 51 as it is, 90 enlarged).
_SMALL_PX = 1600
_OCR_CATEGORY = "NarrativeText"


def ocr_disabled(ext: str) -> UnsupportedType:
    return UnsupportedType(f"{ext}: images need OCR, which is turned off (ENCLAVE_OCR__ENABLED)")


def parse_image(path: Path, ext: str, settings: OcrSettings, max_pages: int) -> ParsedDocument:
    """Read an image file by OCR, each of its pages (a multi-page TIFF) a page."""
    if not settings.enabled:
        raise ocr_disabled(ext)
    engine = Tesseract(settings)
    engine.check()
    with closing(engine.read(_image_pages(path, ext, settings, max_pages))) as read:
        pages = list(read)
    elements, text = place(_ocr_elements(pages))
    ocr_pages = tuple(_page_record(p) for p in pages)
    if not text.strip():
        raise _nothing_read(pages, "OCR found no text in the image")
    return ParsedDocument(text=text, elements=tuple(elements), title=path.stem,
                          page_count=len(pages), filetype=ext.lstrip("."), ocr_pages=ocr_pages)


def ocr_thin_pages(
    path: Path, elements: Sequence[Element], page_count: int | None, settings: OcrSettings
) -> tuple[list[Element], str, tuple[PageOcr, ...]]:
    """A PDF's elements with every page whose text layer is too thin read by OCR instead.

    Returns the elements placed anew, their text, and the OCR'd pages' records. Raises
    the first page's reason when the PDF has no text at all, not even by OCR.
    """
    count = page_count or _pdf_page_count(path)
    if not count:  # neither pypdf nor pdfium finds a page: nothing to render
        return list(elements), _SEPARATOR.join(e.text for e in elements), ()
    chars: dict[int, int] = {}
    for e in elements:
        if e.page is not None:
            chars[e.page] = chars.get(e.page, 0) + len(e.text.strip())
    thin = [n for n in range(1, count + 1) if chars.get(n, 0) < settings.min_text_chars]
    if not thin:
        return list(elements), _SEPARATOR.join(e.text for e in elements), ()
    engine = Tesseract(settings)
    engine.check()
    with closing(engine.read(_pdf_pages(path, thin, settings))) as read:
        pages = {p.page: p for p in read}
    pieces: list[Element] = []
    kept_layer: set[int] = set()
    by_page: dict[int | None, list[Element]] = {}
    for e in elements:
        by_page.setdefault(e.page if e.page in range(1, count + 1) else None, []).append(e)
    for n in range(1, count + 1):
        page, layer = pages.get(n), by_page.get(n, [])
        if page is not None and page.words and _length(page) > chars.get(n, 0):
            # OCR read more than the thin layer holds (a stamped page number, a header, which
            # the picture shows too): its text replaces the layer's. A short page that is all
            # text layer ("Thank you") keeps its own.
            pieces.extend(_ocr_elements([page]))
        else:
            pieces.extend(layer)
            if page is not None and page.words:
                kept_layer.add(n)
    pieces.extend(by_page.get(None, ()))
    placed, text = place(pieces)
    if not text.strip():
        raise _nothing_read(list(pages.values()), "no text layer, and OCR found no text")
    # The pages OCR read (blank ones too), and those it failed on, with why.
    return placed, text, tuple(_page_record(pages[n]) for n in thin
                               if n in pages and n not in kept_layer)


def _length(page: PageText) -> int:
    return sum(len(p.strip()) for p in page.paragraphs)


def place(pieces: Iterable[Element]) -> tuple[list[Element], str]:
    """The elements laid end to end, separated as ingest.parse separates them."""
    placed: list[Element] = []
    parts: list[str] = []
    offset = 0
    for e in pieces:
        if not e.text:
            continue
        if parts:
            offset += len(_SEPARATOR)
        placed.append(replace(e, char_start=offset, char_end=offset + len(e.text)))
        parts.append(e.text)
        offset += len(e.text)
    return placed, _SEPARATOR.join(parts)


def _ocr_elements(pages: Iterable[PageText]) -> Iterator[Element]:
    for page in pages:
        for paragraph in page.paragraphs:
            yield Element(text=paragraph, category=_OCR_CATEGORY, page=page.page,
                          char_start=0, char_end=0, ocr=True)


def _page_record(page: PageText) -> PageOcr:
    return PageOcr(page.page, page.confidence, page.words,
                   str(page.error) if page.error else "")


def _nothing_read(pages: Sequence[PageText], otherwise: str) -> DocumentError:
    """Why a document yielded no text: its first page's error, else ``otherwise``."""
    first = next((p.error for p in pages if p.error is not None), None)
    return first if first is not None else EmptyDocument(otherwise)


# -- images ------------------------------------------------------------------------------------


def _image_pages(path: Path, ext: str, settings: OcrSettings, max_pages: int) -> Iterator[PageImage]:
    from PIL import Image, UnidentifiedImageError

    _register_heif()
    try:
        image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"the image declares too many pixels: {one_line(exc)}") from exc
    except UnidentifiedImageError as exc:
        raise CorruptDocument(f"not a readable {ext} image") from exc
    except OSError as exc:
        raise CorruptDocument(f"not a readable {ext} image: {one_line(exc)}") from exc
    with image:
        frames = int(getattr(image, "n_frames", 1)) if ext in _PAGED else 1
        if frames > max_pages:
            raise TooLarge(f"{frames} pages is over the {max_pages}-page limit")
        for number in range(1, frames + 1):
            try:
                image.seek(number - 1)
            except (EOFError, OSError) as exc:
                yield PageImage(number, None, error=CorruptDocument(
                    f"page {number}: damaged image: {one_line(exc)}"))
                continue
            # The header's size, read before a single pixel is decoded.
            width, height = image.size
            if width * height > settings.max_pixels:
                raise TooLarge(f"page {number}: {width}x{height} pixels is over the "
                               f"{settings.max_pixels / 1e6:g}-megapixel limit (ENCLAVE_OCR__MAX_PIXELS)")
            try:
                picture = _grey(image)
            except Image.DecompressionBombError as exc:
                raise TooLarge(f"page {number}: {one_line(exc)}") from exc
            except (OSError, ValueError, SyntaxError) as exc:
                # Pillow says "image file is truncated", "broken data stream", ...
                yield PageImage(number, None, error=CorruptDocument(
                    f"page {number}: truncated or damaged image: {one_line(exc)}"))
                continue
            if max(picture.size) < _SMALL_PX:
                picture = picture.resize((picture.width * 2, picture.height * 2),
                                         Image.Resampling.LANCZOS)
            yield PageImage(number, picture)


def _grey(image: Image) -> Image:
    """The frame as 8-bit greyscale, upright as its EXIF says, transparency on white."""
    from PIL import Image as PIL
    from PIL import ImageOps

    image.load()
    frame = ImageOps.exif_transpose(image) or image
    if frame.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit and float scans: scaled to 8 bits (a plain conversion clips them white).
        import numpy as np

        values = np.asarray(frame, dtype=np.float32)
        top = float(values.max()) or 1.0
        return PIL.fromarray((values * (255.0 / top)).clip(0, 255).astype(np.uint8), "L")
    if frame.mode in ("RGBA", "LA", "PA") or (frame.mode == "P" and "transparency" in frame.info):
        rgba = frame.convert("RGBA")
        white = PIL.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PIL.alpha_composite(white, rgba).convert("L")
    return frame.convert("L")


_heif_registered = False


def _register_heif() -> None:
    """Pillow opens HEIC/HEIF through pi-heif's plugin, registered once."""
    global _heif_registered
    if not _heif_registered:
        from pi_heif import register_heif_opener

        register_heif_opener()
        _heif_registered = True


# -- PDF pages ---------------------------------------------------------------------------------


def _pdf_page_count(path: Path) -> int | None:
    import pypdfium2 as pdfium

    from ingest.pdf_text import PDFIUM_LOCK

    with PDFIUM_LOCK:  # pdfium is not thread-safe, and documents are parsed in threads
        try:
            pdf = pdfium.PdfDocument(str(path))
        except (pdfium.PdfiumError, OSError, ValueError) as exc:
            log.debug("pdfium cannot open %s: %s", path, exc)
            return None
        try:
            return len(pdf)
        finally:
            pdf.close()


def _pdf_pages(path: Path, numbers: Sequence[int], settings: OcrSettings) -> Iterator[PageImage]:
    """The pages ``numbers`` rendered at the OCR resolution, one at a time, while Tesseract
    reads the previous ones. pdfium is not thread-safe, and other threads parse other
    documents: every pdfium call holds its lock, never across a yield."""
    import pypdfium2 as pdfium

    from ingest.pdf_text import PDFIUM_LOCK

    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(str(path))
        except (pdfium.PdfiumError, OSError, ValueError) as exc:
            opened = exc
        else:
            opened = None
    if opened is not None:
        for number in numbers:
            yield PageImage(number, None, error=CorruptDocument(
                f"page {number} could not be rendered: {one_line(opened)}"))
        return
    try:
        for number in numbers:
            yield _render(pdf, number, settings)
    finally:
        with PDFIUM_LOCK:
            pdf.close()


def _render(pdf: pdfium.PdfDocument, number: int, settings: OcrSettings) -> PageImage:
    import pypdfium2 as pdfium

    from ingest.pdf_text import PDFIUM_LOCK

    with PDFIUM_LOCK:
        try:
            page = pdf[number - 1]
        except (pdfium.PdfiumError, IndexError, ValueError) as exc:
            return PageImage(number, None, error=CorruptDocument(
                f"page {number} could not be rendered: {one_line(exc)}"))
        try:
            scale = _scale(page.get_size(), settings)
            bitmap = page.render(scale=scale, grayscale=True)
            picture = bitmap.to_pil()
        except (pdfium.PdfiumError, ValueError, OSError, MemoryError) as exc:
            return PageImage(number, None, error=CorruptDocument(
                f"page {number} could not be rendered: {one_line(exc)}"))
        finally:
            page.close()
    return PageImage(number, picture, dpi=max(1, round(scale * 72)))


def _scale(size: tuple[float, float], settings: OcrSettings) -> float:
    """Points to pixels at the OCR dpi; less for a page so large it would exceed max_pixels."""
    width, height = (max(1.0, float(s)) for s in size)
    scale = settings.dpi / 72
    pixels = width * height * scale * scale
    if pixels > settings.max_pixels:
        scale *= math.sqrt(settings.max_pixels / pixels)
    return scale
