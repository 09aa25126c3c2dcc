"""Scans with known text for the OCR tests, made at run time: images in every format and
PDFs whose pages have a text layer, a picture, or both."""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from eval.scanned import font_file
from serve.cli.demo import pdf_bytes

DPI = 200


def text_image(lines: Sequence[str], dpi: int = DPI, size_in: tuple[float, float] = (8.5, 4.0),
               points: int = 14) -> Image.Image:
    """``lines`` typeset in DejaVu Sans on a white page, greyscale, at ``dpi``."""
    font = ImageFont.truetype(str(font_file("DejaVuSans.ttf")), round(points * dpi / 72))
    image = Image.new("L", (round(size_in[0] * dpi), round(size_in[1] * dpi)), 255)
    draw = ImageDraw.Draw(image)
    y = 0.6 * dpi
    for line in lines:
        draw.text((0.6 * dpi, y), line, font=font, fill=0)
        y += font.size * 1.6
    return image


def save(image: Image.Image, path: Path, **params: object) -> Path:
    image.info["dpi"] = (DPI, DPI)
    image.save(path, **params)
    return path


def pdf(path: Path, pages: Sequence[tuple[Sequence[str], Image.Image | None]]) -> Path:
    """A PDF of Letter pages, each with text-layer ``lines`` (Helvetica, near the top; a
    stamped page number, say) and optionally a full-page picture (a scan) under them."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b"",
                            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for lines, picture in pages:
        content = []
        resources = "/Font << /F1 3 0 R >>"
        if picture is not None:
            grey = picture.convert("L")
            data = zlib.compress(grey.tobytes())
            objects.append(
                f"<< /Type /XObject /Subtype /Image /Width {grey.width} /Height {grey.height} "
                f"/ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode "
                f"/Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream")
            resources += f" /XObject << /Im1 {len(objects)} 0 R >>"
            content.append("q 612 0 0 792 0 0 cm /Im1 Do Q")
        y = 760
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            content.append(f"BT /F1 10 Tf 72 {y} Td ({escaped}) Tj ET")
            y -= 14
        stream = "\n".join(content).encode("latin-1")
        objects.append(b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream
                       + b"\nendstream")
        contents = len(objects)
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << "
                       f"{resources} >> /Contents {contents} 0 R >>".encode())
        kids.append(len(objects))
    objects[1] = (f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] "
                  f"/Count {len(kids)} >>").encode()
    path.write_bytes(pdf_bytes(objects))
    return path


def png_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb)."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 255).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    # IHDR is the first chunk: length (4) and type (4) at offset 8, then width and height.
    data[16:20] = width.to_bytes(4, "big")
    data[20:24] = height.to_bytes(4, "big")
    crc = zlib.crc32(bytes(data[12:29]))
    data[29:33] = crc.to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


def truncated(path: Path, keep: float = 0.5) -> Path:
    """``path`` cut to ``keep`` of its bytes, as an interrupted copy leaves a file."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def marked_processes(mark: str) -> list[int]:
    """Processes whose environment holds ``mark`` (children of this test's OCR)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if mark.encode() in handle.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found
