"""Parse one file with unstructured, offline, into a :class:`core.types.ParsedDocument`.

Every element keeps its category, its page (where the format has pages) and its
character span in the document's extracted text, which is the elements' texts joined
by blank lines. Tables become pipe-separated rows so rows and columns stay readable.
Objects of unstructured never leave this module.
"""

from __future__ import annotations

import csv
import importlib
import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.errors import (
    CorruptDocument,
    DocumentError,
    EmptyDocument,
    EncryptedDocument,
    TooLarge,
    UnreadableFile,
    UnsupportedType,
    one_line,
)
from core.settings import ConvertSettings, IngestSettings, OcrSettings
from core.types import Element, PageOcr, ParsedDocument
from ingest.convert import TARGETS as CONVERTED
from ingest.convert import converted
from ingest.guards import pdf_page_count, refuse_encrypted, refuse_strict_ooxml
from ingest.pdf_text import PdfText
from ingest.scans import IMAGE_TYPES, ocr_thin_pages, parse_image
from ingest.structured import EXTENSIONS as STRUCTURED
from ingest.structured import render

log = logging.getLogger(__name__)

ELEMENT_SEPARATOR = "\n\n"

# extension -> (module, function, extra keyword arguments)
_PARTITIONERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    ".pdf": ("unstructured.partition.pdf", "partition_pdf", {"strategy": "fast"}),
    ".docx": ("unstructured.partition.docx", "partition_docx", {}),
    ".pptx": ("unstructured.partition.pptx", "partition_pptx", {}),
    ".xlsx": ("unstructured.partition.xlsx", "partition_xlsx", {"find_subtable": False}),
    ".xlsm": ("unstructured.partition.xlsx", "partition_xlsx", {"find_subtable": False}),
    ".csv": ("unstructured.partition.csv", "partition_csv", {}),
    ".tsv": ("unstructured.partition.tsv", "partition_tsv", {}),
    ".html": ("unstructured.partition.html", "partition_html", {}),
    ".htm": ("unstructured.partition.html", "partition_html", {}),
    ".xhtml": ("unstructured.partition.html", "partition_html", {}),
    ".md": ("unstructured.partition.md", "partition_md", {}),
    ".markdown": ("unstructured.partition.md", "partition_md", {}),
    ".txt": ("unstructured.partition.text", "partition_text", {}),
    ".text": ("unstructured.partition.text", "partition_text", {}),
    ".log": ("unstructured.partition.text", "partition_text", {}),
    ".eml": ("unstructured.partition.email", "partition_email", {"process_attachments": True}),
    ".msg": ("unstructured.partition.msg", "partition_msg", {"process_attachments": True}),
    ".rtf": ("unstructured.partition.rtf", "partition_rtf", {}),
    ".odt": ("unstructured.partition.odt", "partition_odt", {}),
    ".epub": ("unstructured.partition.epub", "partition_epub", {}),
    ".rst": ("unstructured.partition.rst", "partition_rst", {}),
    ".org": ("unstructured.partition.org", "partition_org", {}),
    ".xml": ("unstructured.partition.xml", "partition_xml", {}),
}

# Formats we know and refuse, with the reason a user can act on.
_REFUSED: dict[str, str] = {}

_DELIMITED = {".csv", ".tsv"}
_DELIMITERS = ",;|\t"
# Read this much of a delimited file to tell its delimiter.
_SNIFF_BYTES = 64 * 1024
# A delimiter no text holds, to read a one-column file with the csv module.
_NO_DELIMITER = "\x1f"
def supported_extensions() -> frozenset[str]:
    return frozenset(_PARTITIONERS) | IMAGE_TYPES | STRUCTURED | frozenset(CONVERTED)


def unsupported(name: str) -> UnsupportedType | None:
    """Why a file of this name cannot be parsed, by its extension; None: it may be."""
    ext = Path(name).suffix.lower()
    if ext in _REFUSED:
        return UnsupportedType(f"{ext}: {_REFUSED[ext]}")
    if ext not in supported_extensions():
        return UnsupportedType(f"{ext or 'no extension'}: no parser for this kind of file")
    return None


def parse_file(
    path: Path, *, max_bytes: int, max_pages: int, ocr: OcrSettings | None = None,
    convert: ConvertSettings | None = None, scratch: Path | None = None,
    pdf_text: PdfText | None = None,
) -> ParsedDocument:
    """Parse ``path`` or raise a :class:`core.errors.DocumentError` saying why not.

    ``ocr``: how images and scanned PDF pages are read (ingest/scans.py); default settings
    when None. ``convert``: LibreOffice for legacy and OpenDocument office files
    (ingest/convert.py), its working folder under ``scratch`` (None: the temp folder).
    ``pdf_text``: how a PDF's text layer is read (IngestSettings.pdf_text when None).
    """
    ocr = ocr or OcrSettings()
    ext = path.suffix.lower()
    if (problem := unsupported(path.name)) is not None:
        raise problem
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc)) from exc
    if size == 0:
        raise EmptyDocument("the file is 0 bytes")
    if size > max_bytes:
        raise TooLarge(f"{size / 1e6:.1f} MB is over the {max_bytes / 1e6:.1f} MB limit")
    if ext in IMAGE_TYPES:
        return parse_image(path, ext, ocr, max_pages)
    # The email parser wants bytes in an ASCII-compatible encoding; an .eml some Windows tool
    # saved as UTF-16 would come out as text full of NULs, so it gets the text as UTF-8.
    data = _decode(path).encode() if ext == ".eml" and b"\x00" in head else None
    refuse_encrypted(path, ext, head, data)
    refuse_strict_ooxml(path, ext, head)
    page_count = pdf_page_count(path) if ext == ".pdf" else None
    if page_count is not None and page_count > max_pages:
        raise TooLarge(f"{page_count} pages is over the {max_pages}-page limit")

    if ext in STRUCTURED:
        raw = _structured(path, max_bytes)
    elif ext in CONVERTED:
        raw = _partition_converted(path, ext, convert or ConvertSettings(), scratch)
    elif ext in _DELIMITED:
        raw = _partition_delimited(path, ext, *_PARTITIONERS[ext])
    elif ext == ".pdf":
        raw = _partition_pdf(path, pdf_text or IngestSettings().pdf_text)
    else:
        raw = _partition(path, *_PARTITIONERS[ext], data)
    elements, text = _place(raw)
    if not text.strip() and ext == ".pdf" and page_count:
        # unstructured's fast strategy returns nothing, silently, when pdfminer fails or its
        # heuristic calls a page "too complex" (many vector graphics): pypdf may still read it.
        elements, text = _place(_pdf_pages_by_pypdf(path))
    if text.count("\x00") * 100 > len(text):
        # Text is never NULs: this is binary data, or text in an encoding the parser missed.
        raise CorruptDocument("binary data where text was expected (NUL bytes)")
    ocr_pages: tuple[PageOcr, ...] = ()
    if ext == ".pdf" and ocr.enabled:
        # Pages without a text layer worth keeping (scans) are read by OCR.
        elements, text, ocr_pages = ocr_thin_pages(path, elements, page_count, ocr)
    if not text.strip():
        if ext == ".pdf" and page_count is None:
            # pypdf found no pages and pdfminer no text: garbage, not a scan.
            raise CorruptDocument("not a readable PDF: no page tree and no text")
        if ext == ".pdf":
            raise EmptyDocument("no text layer (a scanned PDF? OCR is turned off: ENCLAVE_OCR__ENABLED)")
        raise EmptyDocument("no extractable text")
    if page_count is None:
        pages = [e.page for e in elements if e.page is not None]
        page_count = max(pages) if pages else None
    title = next((e.text for e in elements if e.category == "Title"), "") or path.stem
    return ParsedDocument(
        text=text,
        elements=tuple(elements),
        title=title[:300],
        page_count=page_count,
        filetype=ext.lstrip("."),
        ocr_pages=ocr_pages,
    )


def _partition(
    path: Path,
    module_name: str,
    func_name: str,
    kwargs: dict[str, Any],
    data: bytes | None = None,
) -> Sequence[Any]:
    """Run the partitioner on ``path``, or on ``data`` (its content, re-encoded) if given."""
    from ingest import nlp

    nlp.install()
    func: Callable[..., Sequence[Any]] = getattr(importlib.import_module(module_name), func_name)
    source: dict[str, Any] = {"filename": str(path)}
    if data is not None:
        source = {"file": io.BytesIO(data), "metadata_filename": str(path)}
    try:
        try:
            return func(**source, languages=["eng"], **kwargs)
        except DocumentError:
            raise
        except Exception as exc:
            if not kwargs.get("process_attachments"):
                raise
            # One attachment unstructured cannot read (audio wants whisper, a broken PDF)
            # fails the whole message; the message's own text is still worth having.
            log.warning("%s: attachments skipped: %s", path.name, one_line(exc))
            kwargs = {**kwargs, "process_attachments": False}
            if data is not None:
                source["file"] = io.BytesIO(data)
            return func(**source, languages=["eng"], **kwargs)
    except DocumentError:
        raise
    except FileNotFoundError as exc:
        # unstructured reports a missing converter (pandoc, soffice) this way too.
        if not path.exists():
            raise UnreadableFile("the file vanished during the run") from exc
        raise UnsupportedType(one_line(exc)) from exc
    except PermissionError as exc:
        raise UnreadableFile(exc.strerror or "permission denied") from exc
    except MemoryError as exc:
        raise TooLarge("the parser ran out of memory") from exc
    except Exception as exc:
        message = one_line(exc)
        if "password" in message.lower() or "encrypt" in message.lower():
            raise EncryptedDocument(message) from exc
        raise CorruptDocument(f"{type(exc).__name__}: {message}") from exc


def _partition_pdf(path: Path, how: PdfText) -> Sequence[Any]:
    if how == "pdfium":
        from ingest.pdf_text import pdf_elements

        try:
            found = pdf_elements(path)
        except DocumentError:
            raise
        except Exception as exc:  # noqa: BLE001 - a file the new path trips on still parses
            log.warning("%s: pdfium's path failed (%s); pdfminer reads it", path.name, one_line(exc))
            found = None
        if found is not None:
            return found
    # pdfminer reads some files pdfium cannot open, and says what is wrong with the rest.
    return _partition(path, *_PARTITIONERS[".pdf"])


def _structured(path: Path, max_bytes: int) -> Sequence[Any]:
    """JSON, NDJSON and YAML as ``key.path: value`` lines (ingest/structured.py)."""
    from unstructured.documents.elements import Text

    return [Text(text=block) for block in render(path, max_bytes)]


def _partition_converted(
    path: Path, ext: str, settings: ConvertSettings, scratch: Path | None
) -> Sequence[Any]:
    """Legacy and OpenDocument office files, converted by LibreOffice (ingest/convert.py)."""
    if ext == ".xls":
        # xlrd (through pandas) reads most .xls files itself, without starting LibreOffice.
        try:
            return _partition(path, *_PARTITIONERS[".xlsx"])
        except CorruptDocument as exc:
            log.info("%s: xlrd could not read it (%s); converting it", path.name, exc.reason)
    with converted(path, settings, scratch) as modern:
        return _partition(modern, *_PARTITIONERS[modern.suffix])


def _partition_delimited(
    path: Path, ext: str, module_name: str, func_name: str, kwargs: dict[str, Any]
) -> Sequence[Any]:
    """unstructured reads a well-formed UTF-8 table; the csv module reads what it cannot.

    That is a row wider than the first (pandas' ParserError), a UTF-16 export from Excel,
    and a one-column file, which unstructured's sniffer splits on a letter of its text.
    """
    sample = _decode(path, limit=_SNIFF_BYTES)
    delimiter = "\t" if ext == ".tsv" else _sniff_delimiter(sample)
    if delimiter is not None:
        try:
            return _partition(path, module_name, func_name, kwargs)
        except CorruptDocument as exc:
            log.info("%s: unstructured could not read it (%s); using csv", path.name, exc.reason)
    from unstructured.documents.elements import Table

    try:
        rows = csv.reader(io.StringIO(_decode(path)), delimiter=delimiter or _NO_DELIMITER)
        lines = [[" ".join(cell.split()) for cell in row] for row in rows]
    except csv.Error as exc:
        raise CorruptDocument(f"not a readable {ext} file: {exc}") from exc
    return [Table(text="\n".join(" | ".join(row) for row in lines if any(row)))]


def _decode(path: Path, limit: int | None = None) -> str:
    """The text of ``path`` (its first ``limit`` bytes), in the encoding its bytes tell."""
    from unstructured.file_utils.encoding import detect_file_encoding

    try:
        with path.open("rb") as handle:
            data = handle.read(-1 if limit is None else limit)
        return detect_file_encoding(file=data, final=limit is None or len(data) < limit)[1]
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc)) from exc
    except Exception as exc:  # an undecodable file: binary, or an encoding nobody can tell
        raise CorruptDocument(f"not text in any encoding it could tell: {one_line(exc)}") from exc


def _sniff_delimiter(sample: str) -> str | None:
    """The delimiter of a CSV file, from its first lines; None for a one-column file."""
    lines = [line for line in sample.splitlines()[:20] if line.strip()]
    if not lines:
        return None
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=_DELIMITERS).delimiter
    except csv.Error:
        # Rows of different widths defeat the sniffer; the header row still tells.
        counts = {d: lines[0].count(d) for d in _DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else None


def _pdf_pages_by_pypdf(path: Path) -> list[Any]:
    """One element per page of the PDF's text layer, read by pypdf; none if it cannot."""
    from pypdf import PdfReader
    from unstructured.documents.elements import ElementMetadata, NarrativeText

    try:
        pages = [page.extract_text() or "" for page in PdfReader(str(path), strict=False).pages]
    except Exception as exc:  # noqa: BLE001 - a last resort; no text means empty or corrupt
        log.debug("pypdf could not extract the text of %s: %s", path, exc)
        return []
    return [
        NarrativeText(text=text, metadata=ElementMetadata(page_number=number))
        for number, text in enumerate(pages, 1)
        if text.strip()
    ]


def _element_text(raw: Any) -> str:
    if getattr(raw, "category", "") == "Table":
        html = getattr(raw.metadata, "text_as_html", None)
        if html:
            table = table_html_to_text(html)
            if table.strip():
                return table
    return str(raw.text or "").strip()


def _place(raw_elements: Sequence[Any]) -> tuple[list[Element], str]:
    elements: list[Element] = []
    parts: list[str] = []
    offset = 0
    for raw in raw_elements:
        text = _element_text(raw)
        if not text:
            continue
        if parts:
            offset += len(ELEMENT_SEPARATOR)
        page = getattr(raw.metadata, "page_number", None)
        elements.append(
            Element(
                text=text,
                category=str(getattr(raw, "category", "Text")),
                page=int(page) if isinstance(page, int) else None,
                char_start=offset,
                char_end=offset + len(text),
            )
        )
        parts.append(text)
        offset += len(text)
    return elements, ELEMENT_SEPARATOR.join(parts)


def table_html_to_text(html: str) -> str:
    """Render an HTML table as one line per row with cells separated by `` | ``."""
    from lxml import html as lxml_html

    try:
        root = lxml_html.fromstring(html)
    except Exception:  # noqa: BLE001
        return ""
    lines: list[str] = []
    for row in root.iter("tr"):
        cells = [" ".join(cell.text_content().split()) for cell in row if cell.tag in ("td", "th")]
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def quiet_parsers() -> None:
    """pdfminer and friends log a line per odd glyph; keep the CLI readable."""
    for name in ("pdfminer", "unstructured", "pypdf", "pikepdf", "PIL", "matplotlib"):
        logging.getLogger(name).setLevel(logging.ERROR)
