"""A message's parts, as its BODYSTRUCTURE describes them, and the names and headers
the mailbox connector shows for them.

The structure says which parts are attachments, their names and sizes, without
downloading any of them; the text parts alone are fetched and rebuilt into an .eml, so
that a large attachment never makes its mail too large to read.
"""

from __future__ import annotations

import base64
import binascii
import email.errors
import email.utils
import mimetypes
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.parser import BytesHeaderParser, BytesParser, HeaderParser

from core.errors import CorruptDocument
from ingest.sources.imap_wire import CONTROL, Value, as_int, as_str, unfold


@dataclass(frozen=True, slots=True)
class Part:
    """One leaf of a message's BODYSTRUCTURE."""

    number: str  # the part specifier: "1", "2.1"
    mime: str  # "application/pdf"
    encoding: str  # Content-Transfer-Encoding, lower case
    size: int  # octets as transferred (still encoded)
    filename: str  # as the sender named it, decoded; "" when unnamed
    attachment: bool  # a document of its own, not the mail's text


@dataclass(frozen=True, slots=True)
class Node:
    """A multipart of a message's BODYSTRUCTURE, to rebuild the mail without attachments."""

    number: str  # "" for the message itself
    subtype: str
    children: tuple[Node | Part, ...]


# -- BODYSTRUCTURE ------------------------------------------------------------------------


def parse_structure(value: Value, number: str = "") -> Node | Part:
    """The tree of a BODYSTRUCTURE (RFC 3501 7.4.2), parts numbered as BODY[...] wants them."""
    if not isinstance(value, list) or not value:
        return Part(number or "1", "application/octet-stream", "7bit", 0, "", False)
    if isinstance(value[0], list):
        children: list[Node | Part] = []
        subtype = ""
        for i, child in enumerate(value):
            if isinstance(child, list):
                children.append(parse_structure(child, f"{number}.{i + 1}" if number else str(i + 1)))
            else:
                subtype = as_str(child).lower()
                break
        return Node(number, subtype, tuple(children))
    mime = f"{as_str(value[0]).lower()}/{as_str(value[1] if len(value) > 1 else None).lower()}"
    params = _params(value[2] if len(value) > 2 else None)
    content_id = value[3] if len(value) > 3 else None
    encoding = as_str(value[5] if len(value) > 5 else None).lower() or "7bit"
    size = as_int(value[6] if len(value) > 6 else None)
    # The extension fields follow the type's own: lines for text/*, envelope, body and
    # lines for message/rfc822; then MD5, then the disposition.
    extra = 8 if mime.startswith("text/") else 10 if mime == "message/rfc822" else 7
    disposition = value[extra + 1] if len(value) > extra + 1 else None
    kind, disposition_params = "", {}
    if isinstance(disposition, list) and disposition:
        kind = as_str(disposition[0]).lower()
        disposition_params = _params(disposition[1] if len(disposition) > 1 else None)
    filename = _param(disposition_params, "filename") or _param(params, "name")
    if kind == "attachment" or mime == "message/rfc822":
        attachment = True
    elif filename:
        # A named inline part with a Content-ID is a picture the HTML shows (a logo in a
        # signature), not something the sender attached.
        attachment = not (kind == "inline" and content_id)
    else:
        attachment = False
    # A single-part message's body is part 1.
    return Part(number or "1", mime, encoding, size, filename, attachment)


def _params(value: Value) -> dict[str, str]:
    if not isinstance(value, list):
        return {}
    out: dict[str, str] = {}
    for i in range(0, len(value) - 1, 2):
        out[as_str(value[i]).lower()] = as_str(value[i + 1])
    return out


def _param(params: dict[str, str], name: str) -> str:
    """A parameter, RFC 2231 (name*=utf-8''..., name*0*=...) and RFC 2047 decoded."""
    if any(key == name or key.startswith(f"{name}*") for key in params):
        pairs = [(key, value) for key, value in params.items() if key == name or key.startswith(f"{name}*")]
        try:
            decoded = email.utils.decode_params([("", ""), *pairs])[1:]
            # decode_params quotes what it decodes, and collapsing does not unquote.
            value = email.utils.unquote(email.utils.collapse_rfc2231_value(decoded[0][1])) if decoded else ""
        except (ValueError, LookupError, IndexError):
            value = pairs[0][1]
        return unfold(_decode_words(str(value)))
    return ""


def leaf_parts(node: Node | Part | None) -> Iterator[Part]:
    if node is None:
        return
    if isinstance(node, Part):
        yield node
        return
    for child in node.children:
        yield from leaf_parts(child)


def text_only(node: Node | Part) -> Node | Part | None:
    """The tree without attachments and non-text parts; None when no text is left."""
    if isinstance(node, Part):
        return node if not node.attachment and node.mime.startswith("text/") else None
    children = tuple(kept for child in node.children if (kept := text_only(child)) is not None)
    if not children:
        return None
    if len(children) == 1:
        return children[0]  # a multipart of one part is that part
    return Node(node.number, node.subtype, children)


def rebuild(node: Node | Part, sections: dict[str, bytes]) -> Message:
    if isinstance(node, Part):
        head = sections[f"{node.number}.MIME"]
        if not head.endswith((b"\r\n\r\n", b"\n\n")):
            head += b"\r\n"
        raw = head + sections[node.number]
        return BytesParser(policy=policy.compat32).parsebytes(raw)
    multipart = MIMEMultipart(node.subtype or "mixed")
    for child in node.children:
        multipart.attach(rebuild(child, sections))
    return multipart


def text_message(kept: Node | Part | None, sections: dict[str, bytes]) -> bytes:
    """The mail as .eml from its fetched sections (HEADER, then each kept part's MIME
    header and body): its own headers over its text, no attachment left in it."""
    header = BytesHeaderParser(policy=policy.compat32).parsebytes(sections["HEADER"])
    if kept is not None:
        body = rebuild(kept, sections)
    else:
        # Nothing but attachments: the headers over an empty text, which still parses.
        body = Message()
        body["Content-Type"] = "text/plain; charset=us-ascii"
        body.set_payload("")
    for name, value in header.items():
        if name.lower() not in ("content-type", "content-transfer-encoding", "mime-version"):
            body[name] = value
    return body.as_bytes(policy=policy.compat32.clone(linesep="\r\n"))


def decode_body(raw: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        try:
            return base64.b64decode(raw)
        except binascii.Error:
            try:
                # A missing "=" padding at the end is common and harmless.
                return base64.b64decode(b"".join(raw.split()) + b"==")
            except binascii.Error as exc:
                raise CorruptDocument(f"the attachment's base64 is damaged: {exc}") from exc
    if encoding == "quoted-printable":
        return quopri.decodestring(raw)
    return raw


# -- names and headers --------------------------------------------------------------------


def header_meta(raw: bytes) -> dict[str, str]:
    """From, To, Date (ISO 8601 when it parses) and Subject, RFC 2047 decoded; absent
    headers are left out."""
    # Raw 8-bit header text (not RFC 2047) is UTF-8 from most mailers; as bytes the email
    # package would turn it into replacement characters.
    header = HeaderParser(policy=policy.compat32).parsestr(raw.decode("utf-8", "replace"))
    meta: dict[str, str] = {}
    for name in ("from", "to", "date", "subject"):
        value = header.get(name)
        if value is None:
            continue
        text = unfold(_decode_words(str(value)))
        if name == "date":
            try:
                text = email.utils.parsedate_to_datetime(text).isoformat()
            except (TypeError, ValueError, IndexError):
                pass  # kept as the sender wrote it
        if text:
            meta[name] = text
    return meta


def _decode_words(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError, email.errors.MessageError):
        return value  # an unknown charset or a broken encoded word: the raw text


def attachment_name(name: str, number: str, mime: str) -> str:
    """A file name that stays inside the scratch folder: no path, no "..", no control
    characters; the part's number and a type's extension when the sender gave none."""
    name = CONTROL.sub("", re.split(r"[\\/]", name)[-1]).strip()
    while ".." in name:
        name = name.replace("..", ".")
    name = name.strip(". ")
    if not name:
        ext = ".eml" if mime == "message/rfc822" else (mimetypes.guess_extension(mime) or ".bin")
        name = f"part-{number}{ext}"
    elif mime == "message/rfc822" and not name.lower().endswith(".eml"):
        name += ".eml"
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = f"{stem[:190]}.{ext[:9]}" if dot and len(ext) < 10 else name[:200]
    return name

