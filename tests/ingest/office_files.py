"""Legacy and OpenDocument office files with known text, made at run time: a .docx, .pptx or
.xlsx written with python-docx, python-pptx or openpyxl, saved by LibreOffice itself as
.doc, .ppt, .xls, .odp or .ods (with the locked-down profile of ingest/convert.py, so that
making a file with a linked picture fetches nothing)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from ingest.convert import locked_down_profile

SOFFICE = shutil.which("soffice")
# The modern format each kind is saved from, and LibreOffice's filter for it.
_FROM = {
    ".doc": (".docx", "doc:MS Word 97"),
    ".ppt": (".pptx", "ppt:MS PowerPoint 97"),
    ".odp": (".pptx", "odp"),
    ".xls": (".xlsx", "xls:MS Excel 97"),
    ".ods": (".xlsx", "ods"),
}


def modern(path: Path, lines: Sequence[str]) -> Path:
    """A .docx (paragraphs), .pptx (one slide per line) or .xlsx (one row per line)."""
    if path.suffix == ".docx":
        from docx import Document

        document = Document()
        for line in lines:
            document.add_paragraph(line)
        document.save(str(path))
    elif path.suffix == ".pptx":
        from pptx import Presentation

        deck = Presentation()
        for line in lines:
            slide = deck.slides.add_slide(deck.slide_layouts[1])
            slide.shapes.title.text = line.split(":")[0]
            slide.placeholders[1].text = line
        deck.save(str(path))
    else:
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.append(["item", "text"])
        for n, line in enumerate(lines, 1):
            sheet.append([n, line])
        book.save(str(path))
    return path


def link_picture(docx: Path, url: str) -> Path:
    """Add to a .docx a picture that is not in the file but linked, at ``url``: what a
    tracking pixel in a mailed document looks like."""
    rel = (b'<Relationship Id="rIdLinked" Target="' + url.encode() + b'" TargetMode="External" '
           b'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image"/>')
    picture = (
        b'<w:p><w:r><w:drawing><wp:inline xmlns:wp="http://schemas.openxmlformats.org/'
        b'drawingml/2006/wordprocessingDrawing"><wp:extent cx="914400" cy="914400"/>'
        b'<wp:docPr id="1" name="P"/><a:graphic xmlns:a="http://schemas.openxmlformats.org/'
        b'drawingml/2006/main"><a:graphicData uri="http://schemas.openxmlformats.org/'
        b'drawingml/2006/picture"><pic:pic xmlns:pic="http://schemas.openxmlformats.org/'
        b'drawingml/2006/picture"><pic:nvPicPr><pic:cNvPr id="1" name="P"/><pic:cNvPicPr/>'
        b'</pic:nvPicPr><pic:blipFill><a:blip xmlns:r="http://schemas.openxmlformats.org/'
        b'officeDocument/2006/relationships" r:link="rIdLinked"/><a:stretch><a:fillRect/>'
        b'</a:stretch></pic:blipFill><pic:spPr><a:xfrm><a:off x="0" y="0"/>'
        b'<a:ext cx="914400" cy="914400"/></a:xfrm><a:prstGeom prst="rect"/></pic:spPr>'
        b'</pic:pic></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>'
    )
    parts = {}
    with zipfile.ZipFile(docx) as package:
        for info in package.infolist():
            parts[info.filename] = package.read(info)
    rels = "word/_rels/document.xml.rels"
    parts[rels] = parts[rels].replace(b"</Relationships>", rel + b"</Relationships>")
    parts["word/document.xml"] = parts["word/document.xml"].replace(
        b"<w:sectPr", picture + b"<w:sectPr", 1)
    with zipfile.ZipFile(docx, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in parts.items():
            package.writestr(name, data)
    return docx


def legacy(folder: Path, ext: str, lines: Sequence[str], stem: str = "sample",
           picture_url: str | None = None) -> Path:
    """A ``stem + ext`` file in ``folder`` holding ``lines``, saved by LibreOffice; a .doc
    may link a picture at ``picture_url``."""
    assert SOFFICE, "LibreOffice is not installed (make install installs it)"
    source_ext, target = _FROM[ext]
    with tempfile.TemporaryDirectory() as work:
        source = modern(Path(work) / f"{stem}{source_ext}", lines)
        if picture_url:
            link_picture(source, picture_url)
        profile = locked_down_profile(Path(work) / "profile")
        subprocess.run(
            [SOFFICE, f"-env:UserInstallation={profile.as_uri()}",
             "--headless", "--convert-to", target, "--outdir", str(folder), str(source)],
            check=True, capture_output=True, timeout=180,
            env={"PATH": "/usr/bin:/bin", "HOME": work, "TMPDIR": work},
        )
    made = folder / f"{stem}{ext}"
    assert made.is_file(), f"LibreOffice did not write {made}"
    return made
