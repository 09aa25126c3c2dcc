"""Checks that refuse a file before it is parsed: encrypted, in a form no parser reads, too long.

Each raises the :mod:`core.errors` document error that names why, so the one-line reason
a user reads says "encrypted" rather than whatever the parser would have tripped on.
"""

from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path
from typing import Any

from core.errors import CorruptDocument, DocumentError, EncryptedDocument, UnsupportedType, one_line

log = logging.getLogger(__name__)

_OOXML = {".docx", ".pptx", ".xlsx", ".xlsm"}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# The package relationship of the main part in Strict Open XML; Transitional (what Office
# writes by default) uses schemas.openxmlformats.org, and is all python-docx & co. read.
_STRICT_OOXML_REL = b"http://purl.oclc.org/ooxml/officeDocument/relationships/officeDocument"

# MIME types of an encrypted message body: PGP/MIME, and S/MIME unless it is only signed.
_ENCRYPTED_MIME = {"multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime"}


def refuse_encrypted(path: Path, ext: str, head: bytes, data: bytes | None = None) -> None:
    if ext == ".pdf":
        _check_pdf(path)
    elif ext in _OOXML and head.startswith(_OLE_MAGIC):
        # An OOXML file is a zip; one wrapped in an OLE container is encrypted.
        import msoffcrypto

        try:
            with path.open("rb") as handle:
                encrypted = msoffcrypto.OfficeFile(handle).is_encrypted()
        except Exception as exc:
            raise CorruptDocument(f"not a valid {ext} file: {one_line(exc)}") from exc
        if encrypted:
            raise EncryptedDocument("password-protected Office file")
        raise CorruptDocument(f"not a valid {ext} file (an OLE container)")
    elif ext == ".eml":
        _check_email(path, data)
    elif ext == ".msg":
        _check_msg(path)


def refuse_strict_ooxml(path: Path, ext: str, head: bytes) -> None:
    # python-docx, python-pptx and openpyxl read only Transitional OOXML; to them a valid
    # Strict file has no main part, which would otherwise be reported as corrupt.
    if ext not in _OOXML or not head.startswith(b"PK"):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            rels = archive.read("_rels/.rels")
    except Exception as exc:  # noqa: BLE001 - a broken zip is the partitioner's to report
        log.debug("cannot read the package relationships of %s: %s", path, exc)
        return
    if _STRICT_OOXML_REL in rels:
        raise UnsupportedType(
            f"{ext} saved as Strict Open XML is not supported; save it as a standard {ext}"
        )


def _check_email(path: Path, data: bytes | None) -> None:
    from email.parser import BytesHeaderParser

    try:
        with io.BytesIO(data) if data is not None else path.open("rb") as handle:
            headers = BytesHeaderParser().parse(handle)
    except Exception as exc:  # noqa: BLE001 - unreadable headers are the partitioner's to report
        log.debug("cannot read the headers of %s: %s", path, exc)
        return
    _refuse_encrypted_mime(headers.get_content_type(), headers.get_param("smime-type"))


def _check_msg(path: Path) -> None:
    from email.message import Message as MimeHeaders

    from oxmsg import Message

    try:
        msg = Message.load(str(path))
        message_class = (msg.message_class or "").lower()
        transport = msg.message_headers
    except Exception as exc:  # noqa: BLE001 - a broken .msg is the partitioner's to report
        log.debug("cannot read the properties of %s: %s", path, exc)
        return
    # Outlook's classes: IPM.Note.SMIME is encrypted (or opaque-signed, equally unreadable);
    # IPM.Note.SMIME.MultipartSigned is signed in clear text.
    if message_class.startswith("ipm.note.smime") and not message_class.endswith("multipartsigned"):
        raise EncryptedDocument("S/MIME-encrypted Outlook message")
    headers = MimeHeaders()
    headers["Content-Type"] = transport.get("Content-Type", "text/plain")
    _refuse_encrypted_mime(headers.get_content_type(), headers.get_param("smime-type"))


def _refuse_encrypted_mime(content_type: str, smime_type: Any) -> None:
    if content_type not in _ENCRYPTED_MIME:
        return
    if content_type == "multipart/encrypted":
        raise EncryptedDocument("PGP/MIME-encrypted email")
    if str(smime_type or "").lower() != "signed-data":
        raise EncryptedDocument("S/MIME-encrypted email")


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
            raise EncryptedDocument(one_line(exc)) from exc
        log.debug("pypdf could not read %s: %s", path, exc)


def pdf_page_count(path: Path) -> int | None:
    from pypdf import PdfReader

    try:
        return len(PdfReader(str(path), strict=False).pages)
    except Exception:  # noqa: BLE001 - the page count is a guard, not a requirement
        return None


