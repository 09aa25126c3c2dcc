"""Known text as scanned pages: rendered, degraded as scanners and faxes degrade it, and
wrapped as image-only PDFs (no text layer), for the OCR benchmark and its tests.

A page is US Letter with 1-inch margins, 11-point DejaVu Serif (shipped with matplotlib,
so no system font is needed); words wrap and never break, so the page's text is exactly
its lines joined by spaces.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from PIL.Image import Image
    from PIL.ImageFont import FreeTypeFont

PAGE_IN = (8.5, 11.0)
MARGIN_IN = 1.0
POINTS = 11
LEADING = 1.4

Condition = Literal["clean-300", "noisy-200", "jpeg-60"]
CONDITIONS: tuple[Condition, ...] = ("clean-300", "noisy-200", "jpeg-60")
# The resolution each condition is scanned at.
DPI: dict[Condition, int] = {"clean-300": 300, "noisy-200": 200, "jpeg-60": 300}
SKEW_DEGREES = 2.0
NOISE_SIGMA = 30.0  # grey levels of Gaussian noise
SPECKLE = 0.002  # share of pixels flipped to black or white
JPEG_QUALITY = 60


@dataclass(frozen=True, slots=True)
class Page:
    text: str  # what the page shows, lines joined by single spaces
    lines: tuple[str, ...]


def font_file(name: str = "DejaVuSerif.ttf") -> Path:
    """A TrueType font that ships with matplotlib (a dependency), so every machine has it."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
    if not path.exists():
        raise FileNotFoundError(f"{path}: matplotlib's fonts are missing")
    return path


def paginate(text: str, dpi: int = 300, points: int = POINTS) -> list[Page]:
    """``text`` wrapped into the pages it fills at ``points`` on a Letter page."""
    font = _font(dpi, points)
    width = (PAGE_IN[0] - 2 * MARGIN_IN) * dpi
    per_page = int((PAGE_IN[1] - 2 * MARGIN_IN) * dpi // (font.size * LEADING))
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if line and font.getlength(candidate) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        if line:
            lines.append(line)
    pages = [tuple(lines[i:i + per_page]) for i in range(0, len(lines), per_page)]
    return [Page(" ".join(p), p) for p in pages]


def render(page: Page, dpi: int = 300, points: int = POINTS) -> Image:
    """The page as a clean greyscale scan at ``dpi``."""
    from PIL import Image, ImageDraw

    font = _font(dpi, points)
    size = (round(PAGE_IN[0] * dpi), round(PAGE_IN[1] * dpi))
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    y = MARGIN_IN * dpi
    for line in page.lines:
        draw.text((MARGIN_IN * dpi, y), line, font=font, fill=0)
        y += font.size * LEADING
    return image


def degrade(image: Image, seed: int = 0) -> Image:
    """A cheap scanner's copy: Gaussian noise, speckles, and a 2-degree skew."""
    import numpy as np
    from PIL import Image as PIL

    rng = np.random.default_rng(seed)
    skewed = image.rotate(SKEW_DEGREES, resample=PIL.Resampling.BILINEAR, expand=True,
                          fillcolor=255)
    pixels = np.asarray(skewed, dtype=np.float64) + rng.normal(0.0, NOISE_SIGMA, skewed.size[::-1])
    flips = rng.random(pixels.shape)
    pixels[flips < SPECKLE / 2] = 0
    pixels[flips > 1 - SPECKLE / 2] = 255
    return PIL.fromarray(pixels.clip(0, 255).astype(np.uint8), "L")


def scan(page: Page, condition: Condition, seed: int = 0) -> tuple[Image | bytes, int]:
    """The page scanned under ``condition``: a picture, or JPEG bytes; and its dpi."""
    dpi = DPI[condition]
    image = render(page, dpi)
    if condition == "noisy-200":
        return degrade(image, seed), dpi
    if condition == "jpeg-60":
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=JPEG_QUALITY)
        return buffer.getvalue(), dpi
    return image, dpi


def image_only_pdf(scans: Sequence[tuple[Image | bytes, int]], path: Path) -> Path:
    """A PDF whose pages are only pictures (no text layer), each at its scan's size.

    A picture is stored losslessly; JPEG bytes are stored as they are (DCTDecode), as a
    scanner saving JPEG would.
    """
    import pypdfium2 as pdfium
    from PIL import Image as PIL

    pdf = pdfium.PdfDocument.new()
    try:
        for content, dpi in scans:
            image = PIL.open(io.BytesIO(content)) if isinstance(content, bytes) else content
            width, height = image.width * 72 / dpi, image.height * 72 / dpi
            page = pdf.new_page(width, height)
            picture = pdfium.PdfImage.new(pdf)
            if isinstance(content, bytes):
                picture.load_jpeg(io.BytesIO(content), inline=True)
            else:
                bitmap = pdfium.PdfBitmap.from_pil(image)
                picture.set_bitmap(bitmap)
            picture.set_matrix(pdfium.PdfMatrix().scale(width, height))
            page.insert_obj(picture)
            page.gen_content()
            page.close()
        pdf.save(str(path))
    finally:
        pdf.close()
    return path


def scanned_pdfs(texts: Sequence[str], condition: Condition, folder: Path,
                 pages_per_file: int = 10) -> Iterator[tuple[Path, list[Page]]]:
    """``texts`` paginated, scanned and wrapped, ``pages_per_file`` pages a PDF (each text
    starts on a page of its own); yields each file with its pages' reference texts."""
    folder.mkdir(parents=True, exist_ok=True)
    pages = [p for text in texts for p in paginate(text, DPI[condition])]
    for n, start in enumerate(range(0, len(pages), pages_per_file)):
        part = pages[start:start + pages_per_file]
        scans = [scan(p, condition, seed=start + i) for i, p in enumerate(part)]
        yield image_only_pdf(scans, folder / f"{condition}-{n:04d}.pdf"), part


def _font(dpi: int, points: int) -> FreeTypeFont:
    from PIL import ImageFont

    return ImageFont.truetype(str(font_file()), round(points * dpi / 72))
