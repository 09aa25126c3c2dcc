"""IMAP as imaplib speaks it, for the mailbox connector: its untagged FETCH answers parsed
into values, folder names spelled as a command wants them, and its failures worded for a
job's reason.

imaplib leaves responses as raw bytes (with literals split out into tuples); the parsing
here is small and forgiving on purpose, since servers differ in spacing and in how they echo
item names, and one odd answer must not stop a listing.
"""

from __future__ import annotations

import base64
import imaplib
import re
import socket
import ssl
from collections.abc import Iterator
from typing import TypeAlias

# A parsed IMAP value: an atom or string (bytes), NIL (None), or a parenthesised list.
Value: TypeAlias = bytes | list["Value"] | None
CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def fetch_items(data: list[object]) -> Iterator[dict[bytes, Value]]:
    """Each message's FETCH items (upper-case name -> value) from imaplib's answer, where a
    literal splits a message into (text ending in {n}, literal) tuples and more text."""
    for response in _responses(data):
        # "<seq> (NAME VALUE NAME VALUE ...)"; untagged answers other than FETCH are skipped.
        if len(response) < 2 or not isinstance(response[1], list):
            continue
        flat = response[1]
        items: dict[bytes, Value] = {}
        for i in range(0, len(flat) - 1, 2):
            name = flat[i]
            if isinstance(name, bytes):
                items[name.upper().replace(b".PEEK", b"")] = flat[i + 1]
        yield items


def _responses(data: list[object]) -> Iterator[list[Value]]:
    tokens = _tokens(data)
    stack: list[list[Value]] = [[]]
    for token in tokens:
        if token is _OPEN:
            stack.append([])
        elif token is _CLOSE:
            if len(stack) > 1:
                done = stack.pop()
                stack[-1].append(done)
                if len(stack) == 1:
                    yield stack[0]
                    stack = [[]]
        elif token is _END:
            if len(stack) == 1 and stack[0]:
                yield stack[0]
            stack = [[]] if len(stack) == 1 else stack
        else:
            stack[-1].append(token)  # type: ignore[arg-type]


_OPEN, _CLOSE, _END = object(), object(), object()
_LITERAL = re.compile(rb"\{(\d+)\+?\}$")


def _tokens(data: list[object]) -> Iterator[object]:
    for piece in data:
        if isinstance(piece, tuple):
            head, literal = piece[0], piece[1]
            head = _LITERAL.sub(b"", head.rstrip())
            yield from _lex(head)
            yield bytes(literal)
        elif isinstance(piece, bytes):
            yield from _lex(piece)
            yield _END


def _lex(text: bytes) -> Iterator[object]:
    i, n = 0, len(text)
    while i < n:
        c = text[i:i + 1]
        if c in b" \r\n\t":
            i += 1
        elif c == b"(":
            yield _OPEN
            i += 1
        elif c == b")":
            yield _CLOSE
            i += 1
        elif c == b'"':
            out = bytearray()
            i += 1
            while i < n and text[i:i + 1] != b'"':
                if text[i:i + 1] == b"\\" and i + 1 < n:
                    i += 1
                out += text[i:i + 1]
                i += 1
            i += 1
            yield bytes(out)
        else:
            start = i
            depth = 0
            # An atom runs to a space or a parenthesis, except inside "BODY[HEADER.FIELDS (A B)]".
            while i < n:
                c = text[i:i + 1]
                if c == b"[":
                    depth += 1
                elif c == b"]":
                    depth -= 1
                elif depth <= 0 and c in b" ()\r\n":
                    break
                i += 1
            atom = text[start:i]
            yield None if atom.upper() == b"NIL" else atom


def item(items: dict[bytes, Value], name: bytes) -> Value:
    return items.get(name.upper())


def as_int(value: Value) -> int:
    return int(value) if isinstance(value, bytes) and value.isdigit() else 0


def as_str(value: Value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


# -- folder names and text ----------------------------------------------------------------


def mutf7(name: str) -> str:
    """A folder name in IMAP's modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).decode()
            out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unfold(text: str) -> str:
    return " ".join(CONTROL.sub(" ", text).split())


# -- failures, worded for a job -----------------------------------------------------------


def server_text(value: object, password: str) -> str:
    """A server's or imaplib's message as one line, without the password in any case."""
    if isinstance(value, BaseException) and value.args:
        value = value.args[0]
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    text = unfold(text)
    if password:
        text = text.replace(password, "***")
    return text[:300] or "no reason given"


def failure_reason(exc: BaseException, password: str) -> str:
    """Why the server could not be reached, in words an administrator acts on."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS failed: certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host: {exc.strerror or exc}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, imaplib.IMAP4.abort):
        return f"connection lost: {server_text(exc, password)}"
    return server_text(exc, password)


def shut(conn: imaplib.IMAP4) -> None:
    try:
        conn.shutdown()
    except OSError:
        pass
