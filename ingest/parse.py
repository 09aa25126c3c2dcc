"""Parse one file with unstructured, offline, into a :class:`core.types.ParsedDocument`.

Every element keeps its category, its page (where the format has pages) and its
character span in the document's extracted text, which is the elements' texts joined
by blank lines. Tables become pipe-separated rows so rows and columns stay readable.
Objects of unstructured never leave this module.
"""

from __future__ import annotations

import importlib
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
)
from core.types import Element, ParsedDocument

log = logging.getLogger(__name__)

ELEMENT_SEPARATOR = "\n\n"

# extension -> (module, function, extra keyword arguments)
_PARTITIONERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    ".pdf": ("unstructured.partition.pdf", "partition_pdf", {"strategy": "fast"}),
    ".docx": ("unstructured.partition.docx", "partition_docx", {}),
    ".pptx": ("unstructured.partition.pptx", "partition_pptx", {}),
    ".xlsx": ("unstructured.partition.xlsx", "partition_xlsx", {"find_subtable": False}),
    ".xlsm": ("unstructured.partition.xlsx", "partition_xlsx", {"find_subtable": False}),
    ".xls": ("unstructured.partition.xlsx", "partition_xlsx", {"find_subtable": False}),
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
    ".eml": ("unstructured.partition.email", "partition_email", {}),
    ".msg": ("unstructured.partition.msg", "partition_msg", {}),
    ".rtf": ("unstructured.partition.rtf", "partition_rtf", {}),
    ".odt": ("unstructured.partition.odt", "partition_odt", {}),
    ".epub": ("unstructured.partition.epub", "partition_epub", {}),
    ".rst": ("unstructured.partition.rst", "partition_rst", {}),
    ".org": ("unstructured.partition.org", "partition_org", {}),
    ".xml": ("unstructured.partition.xml", "partition_xml", {}),
}

# Formats we know and refuse, with the reason a user can act on.
_REFUSED: dict[str, str] = {
    ".doc": "legacy Word .doc needs LibreOffice, which enclave does not run; save as .docx",
    ".ppt": "legacy PowerPoint .ppt needs LibreOffice, which enclave does not run; save as .pptx",
    ".odp": "OpenDocument presentations are not supported; export as .pptx or .pdf",
    ".ods": "OpenDocument spreadsheets are not supported; export as .xlsx or .csv",
    ".jpg": "images need OCR, which is not enabled",
    ".jpeg": "images need OCR, which is not enabled",
    ".png": "images need OCR, which is not enabled",
    ".tif": "images need OCR, which is not enabled",
    ".tiff": "images need OCR, which is not enabled",
    ".bmp": "images need OCR, which is not enabled",
    ".heic": "images need OCR, which is not enabled",
    ".gif": "images need OCR, which is not enabled",
}

_OOXML = {".docx", ".pptx", ".xlsx", ".xlsm"}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def supported_extensions() -> frozenset[str]:
    return frozenset(_PARTITIONERS)


def parse_file(path: Path, *, max_bytes: int, max_pages: int) -> ParsedDocument:
    """Parse ``path`` or raise a :class:`core.errors.DocumentError` saying why not."""
    ext = path.suffix.lower()
    if ext in _REFUSED:
        raise UnsupportedType(f"{ext}: {_REFUSED[ext]}")
    if ext not in _PARTITIONERS:
        raise UnsupportedType(f"{ext or 'no extension'}: no parser for this kind of file")
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
    _refuse_encrypted(path, ext, head)
    page_count = _pdf_page_count(path) if ext == ".pdf" else None
    if page_count is not None and page_count > max_pages:
        raise TooLarge(f"{page_count} pages is over the {max_pages}-page limit")

    module_name, func_name, kwargs = _PARTITIONERS[ext]
    raw = _partition(path, module_name, func_name, kwargs)
    elements, text = _place(raw)
    if not text.strip():
        if ext == ".pdf":
            raise EmptyDocument("no text layer (a scanned PDF? OCR is not enabled)")
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
    )


def _partition(
    path: Path, module_name: str, func_name: str, kwargs: dict[str, Any]
) -> Sequence[Any]:
    from ingest import nlp

    nlp.install()
    func: Callable[..., Sequence[Any]] = getattr(importlib.import_module(module_name), func_name)
    try:
        return func(filename=str(path), languages=["eng"], **kwargs)
    except DocumentError:
        raise
    except FileNotFoundError as exc:
        # unstructured reports a missing converter (pandoc, soffice) this way too.
        if not path.exists():
            raise UnreadableFile("the file vanished during the run") from exc
        raise UnsupportedType(_first_line(exc)) from exc
    except PermissionError as exc:
        raise UnreadableFile(exc.strerror or "permission denied") from exc
    except MemoryError as exc:
        raise TooLarge("the parser ran out of memory") from exc
    except Exception as exc:
        message = _first_line(exc)
        if "password" in message.lower() or "encrypt" in message.lower():
            raise EncryptedDocument(message) from exc
        raise CorruptDocument(f"{type(exc).__name__}: {message}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _refuse_encrypted(path: Path, ext: str, head: bytes) -> None:
    if ext == ".pdf":
        _check_pdf(path)
    elif ext in _OOXML and head.startswith(_OLE_MAGIC):
        # An OOXML file is a zip; one wrapped in an OLE container is encrypted.
        import msoffcrypto

        try:
            with path.open("rb") as handle:
                encrypted = msoffcrypto.OfficeFile(handle).is_encrypted()
        except Exception as exc:
            raise CorruptDocument(f"not a valid {ext} file: {_first_line(exc)}") from exc
        if encrypted:
            raise EncryptedDocument("password-protected Office file")
        raise CorruptDocument(f"not a valid {ext} file (an OLE container)")


def _check_pdf(path: Path) -> None:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise EncryptedDocument("password-protected PDF")
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        # pdfminer is more forgiving than pypdf; let it try before calling the file corrupt.
        log.debug("pypdf could not read %s: %s", path, exc)
    except Exception as exc:
        if "password" in str(exc).lower() or "crypt" in str(exc).lower():
            raise EncryptedDocument(_first_line(exc)) from exc
        log.debug("pypdf could not read %s: %s", path, exc)


def _pdf_page_count(path: Path) -> int | None:
    from pypdf import PdfReader

    try:
        return len(PdfReader(str(path), strict=False).pages)
    except Exception:  # noqa: BLE001 - the page count is a guard, not a requirement
        return None


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
