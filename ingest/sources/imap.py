"""An IMAP mailbox folder as a source: each message a document, each attachment another.

IMAP messages never change: a message is known by its folder's UIDVALIDITY and its UID,
and a server that renumbers a folder changes UIDVALIDITY, which changes every key (the sync
then reads the folder afresh). So the change signal is those two numbers and listing costs
one small FETCH per batch of messages: the BODYSTRUCTURE says which parts are attachments,
their names and sizes, without downloading any of them.

The message document holds the mail's text parts only; the attachments are documents of
their own (with the message's key as "parent"), so a PDF sent with a mail is parsed once,
cited by its own name, and an attachment over the size limit fails alone. Everything is
read with EXAMINE and BODY.PEEK: indexing a mailbox never marks a mail as read.
"""

from __future__ import annotations

import fnmatch
import imaplib
import logging
import re
import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from core.errors import SourceError, TooLarge, UnreadableFile
from ingest.sources.base import Entry, Fetched
from ingest.sources.imap_parts import (
    Node,
    Part,
    attachment_name,
    decode_body,
    header_meta,
    leaf_parts,
    parse_structure,
    text_message,
    text_only,
)
from ingest.sources.imap_wire import (
    Value,
    as_int,
    failure_reason,
    fetch_items,
    item,
    mutf7,
    quoted,
    server_text,
    shut,
)

log = logging.getLogger(__name__)

# Messages per FETCH while listing: one round trip each, a few kB of BODYSTRUCTURE apiece.
_BATCH = 200
_HEADERS = "FROM TO DATE SUBJECT MESSAGE-ID"
_LIST_ITEMS = f"(UID RFC822.SIZE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS ({_HEADERS})])"
_KEY_TAIL = re.compile(r"(\d+)/(\d+)(?:/([0-9]+(?:\.[0-9]+)*)-(.+))?")


class _Lost(SourceError):
    """The connection broke (the server dropped an idle one): worth one retry."""


class ImapConnector:
    """One folder of one mailbox, ``imap://host:port/FOLDER`` or ``imaps://...`` (TLS).

    ``include``/``exclude`` are file-name patterns for attachments (messages are always
    listed). ``verify`` off accepts any TLS certificate: for a test server only.
    """

    def __init__(self, url: str, *, username: str, password: str, include: Sequence[str] = (),
                 exclude: Sequence[str] = (), max_bytes: int = 100 * 2**20, timeout_s: float = 30.0,
                 verify: bool = True) -> None:
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            # Not echoed: a URL that does not parse may still hold a password.
            raise SourceError(f"not an imap:// or imaps:// URL: {exc}") from exc
        if parts.scheme not in ("imap", "imaps"):
            raise SourceError(f"{url!r}: a mailbox source is imap://host[:port]/FOLDER or imaps://...")
        if parts.username or parts.password:
            # The URL is shown and stored; credentials have fields of their own.
            raise SourceError("a mailbox URL must not hold credentials: give username and password")
        try:
            port = parts.port
        except ValueError as exc:
            raise SourceError(f"{url!r}: {exc}") from exc
        if not parts.hostname:
            raise SourceError(f"{url!r}: no host")
        self.tls = parts.scheme == "imaps"
        self.host = parts.hostname
        self.port = port or (993 if self.tls else 143)
        self.folder = unquote(parts.path).strip("/") or "INBOX"
        self.username = username
        self.password = password
        self.include = tuple(p.lower() for p in include)
        self.exclude = tuple(p.lower() for p in exclude)
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.verify = verify
        host = f"[{self.host}]" if ":" in self.host else self.host
        # What messages and errors name: never the user or the password.
        self.base = f"imap://{host}:{self.port}"
        self._location = f"{self.base}/{quote(self.folder, safe='/')}"
        self._conn: imaplib.IMAP4 | None = None
        self._uidvalidity: str | None = None

    # -- the Connector protocol -------------------------------------------------------

    def entries(self) -> Iterator[Entry]:
        self._uidvalidity = None  # selected afresh: a held connection may not see new mail yet
        conn, uidvalidity = self._select()
        uids = self._all_uids(conn)
        for start in range(0, len(uids), _BATCH):
            batch = uids[start:start + _BATCH]
            # A reconnect between batches (a fetch in between) may find the folder renumbered.
            conn, now = self._select()
            if now != uidvalidity:
                raise SourceError(f"{self._location}: the folder was renumbered while it was listed "
                                  f"(UIDVALIDITY {uidvalidity} -> {now})")
            data = self._command(conn, "FETCH", ",".join(batch), _LIST_ITEMS)
            for items in fetch_items(data):
                yield from self._message_entries(uidvalidity, items)

    def fetch(self, entry: Entry, folder: Path) -> Fetched:
        uidvalidity, uid, part_number = self._parse_key(entry.key)
        try:
            return self._fetch(uidvalidity, uid, part_number, entry, folder)
        except _Lost:
            # Servers drop idle connections (the sync holds one open between items): one retry
            # on a fresh connection; the second failure is the source's.
            self._drop()
        except UnreadableFile:
            if self._uidvalidity is None:
                raise
            # A connection selected before the message arrived does not know its UID yet.
            self._uidvalidity = None
        return self._fetch(uidvalidity, uid, part_number, entry, folder)

    def close(self) -> None:
        conn, self._conn, self._uidvalidity = self._conn, None, None
        if conn is None:
            return
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError):
            pass  # a dead connection is closed either way

    def __enter__(self) -> ImapConnector:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- listing ----------------------------------------------------------------------

    def _all_uids(self, conn: imaplib.IMAP4) -> list[str]:
        # UID FETCH 1:* (UID) rather than UID SEARCH ALL: SEARCH answers in one line, and
        # imaplib refuses lines over 1 MB (about 150,000 UIDs); FETCH answers a line each.
        data = self._command(conn, "FETCH", "1:*", "(UID)")
        uids = {as_int(item(items, b"UID")) for items in fetch_items(data)}
        return [str(uid) for uid in sorted(uids - {0})]

    def _message_entries(self, uidvalidity: str, items: dict[bytes, Value]) -> Iterator[Entry]:
        uid = as_int(item(items, b"UID"))
        if not uid:
            return
        # Servers echo the field list as they please: found by the section's start.
        headers = next((v for k, v in items.items() if k.startswith(b"BODY[HEADER.FIELDS")), None)
        meta = header_meta(headers if isinstance(headers, bytes) else b"")
        subject = meta.get("subject", "")
        key = f"{self.folder}/{uidvalidity}/{uid}"
        location = f"{self._location}/{uidvalidity}/{uid}"
        signal = f"{uidvalidity}:{uid}"
        yield Entry(key=key, signal=signal, location=location, display=subject or "(no subject)",
                    filename=f"{uid}.eml", meta=meta)
        structure = item(items, b"BODYSTRUCTURE")
        for part in leaf_parts(parse_structure(structure)):
            if not part.attachment:
                continue
            name = attachment_name(part.filename, part.number, part.mime)
            if not self._wanted(name):
                continue
            yield Entry(key=f"{key}/{part.number}-{name}", signal=signal,
                        location=f"{location}/{part.number}",
                        display=f"{subject or '(no subject)'} / {name}", filename=name,
                        meta={**meta, "parent": key})

    def _wanted(self, name: str) -> bool:
        lowered = name.lower()
        if self.include and not any(fnmatch.fnmatchcase(lowered, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(lowered, p) for p in self.exclude)

    # -- fetching ---------------------------------------------------------------------

    def _fetch(self, uidvalidity: str, uid: str, part_number: str | None, entry: Entry,
               folder: Path) -> Fetched:
        conn, now = self._select()
        if now != uidvalidity:
            raise UnreadableFile(f"the folder was renumbered since it was listed (UIDVALIDITY {now})")
        # The structure again, not the listing's: this connector may not be the one that listed.
        found = list(fetch_items(self._command(conn, "FETCH", uid, "(UID BODYSTRUCTURE)")))
        if not found:
            raise UnreadableFile(f"message {uid} is gone from {self.folder} since it was listed")
        root = parse_structure(item(found[0], b"BODYSTRUCTURE"))
        path = folder / entry.filename
        if part_number is None:
            path.write_bytes(self._message_text(conn, uid, root))
            return Fetched(path)
        part = next((p for p in leaf_parts(root) if p.number == part_number), None)
        if part is None:
            raise UnreadableFile(f"message {uid} has no part {part_number}")
        # Base64 in the usual 76-character lines: 57 bytes a 78-byte line. Close enough to
        # refuse without downloading; the parser checks the exact size of what comes.
        estimate = part.size * 57 // 78 if part.encoding == "base64" else part.size
        if estimate > self.max_bytes:
            raise TooLarge(f"{estimate / 1e6:.1f} MB is over the {self.max_bytes / 1e6:.1f} MB limit")
        raw = self._body(conn, uid, part_number)
        path.write_bytes(decode_body(raw, part.encoding))
        return Fetched(path)

    def _message_text(self, conn: imaplib.IMAP4, uid: str, root: Node | Part) -> bytes:
        """The message as .eml with its text parts only: the attachments are documents of
        their own, and a 50 MB attachment must not make its mail too large to read."""
        if isinstance(root, Part) and not root.attachment:
            if root.size > self.max_bytes:
                raise TooLarge(f"{root.size / 1e6:.1f} MB is over the {self.max_bytes / 1e6:.1f} MB limit")
            return self._body(conn, uid, "")  # one text part: the message as it is
        kept = text_only(root)
        leaves = list(leaf_parts(kept)) if kept is not None else []
        size = sum(p.size for p in leaves)
        if size > self.max_bytes:
            raise TooLarge(f"{size / 1e6:.1f} MB of text is over the {self.max_bytes / 1e6:.1f} MB limit")
        sections = ["HEADER"]
        for part in leaves:
            sections += [f"{part.number}.MIME", part.number]
        return text_message(kept, self._sections(conn, uid, sections))

    def _body(self, conn: imaplib.IMAP4, uid: str, section: str) -> bytes:
        return self._sections(conn, uid, [section])[section]

    def _sections(self, conn: imaplib.IMAP4, uid: str, sections: list[str]) -> dict[str, bytes]:
        wanted = " ".join(f"BODY.PEEK[{s}]" for s in sections)
        found = list(fetch_items(self._command(conn, "FETCH", uid, f"(UID {wanted})")))
        if not found:
            raise UnreadableFile(f"message {uid} is gone from {self.folder} since it was listed")
        out: dict[str, bytes] = {}
        for section in sections:
            value = item(found[0], f"BODY[{section}]".encode())
            out[section] = value if isinstance(value, bytes) else b""
        return out

    def _parse_key(self, key: str) -> tuple[str, str, str | None]:
        prefix = f"{self.folder}/"
        match = _KEY_TAIL.fullmatch(key[len(prefix):]) if key.startswith(prefix) else None
        if match is None:
            raise UnreadableFile(f"{key!r} is not a message of {self._location}")
        return match.group(1), match.group(2), match.group(3)

    # -- the connection ---------------------------------------------------------------

    def _select(self) -> tuple[imaplib.IMAP4, str]:
        """The connection with the folder selected read-only, and its UIDVALIDITY."""
        conn = self._connection()
        if self._uidvalidity is not None:
            return conn, self._uidvalidity
        try:
            typ, data = conn.select(quoted(mutf7(self.folder)), readonly=True)
        except (imaplib.IMAP4.error, OSError) as exc:
            self._drop()
            raise _Lost(f"{self._location}: {failure_reason(exc, self.password)}") from exc
        if typ != "OK":
            raise SourceError(f"{self.base}: cannot open folder {self.folder!r}: "
                              f"{server_text(data[-1] if data else b'', self.password)}")
        _, found = conn.response("UIDVALIDITY")
        uidvalidity = found[0] if found and isinstance(found[0], bytes) else None
        if not uidvalidity or not uidvalidity.isdigit():
            raise SourceError(f"{self._location}: the server gave no UIDVALIDITY")
        self._uidvalidity = uidvalidity.decode()
        return conn, self._uidvalidity

    def _connection(self) -> imaplib.IMAP4:
        if self._conn is not None:
            return self._conn
        try:
            if self.tls:
                context = ssl.create_default_context()
                if not self.verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=context,
                                                        timeout=self.timeout_s)
            else:
                conn = imaplib.IMAP4(self.host, self.port, timeout=self.timeout_s)
        except (imaplib.IMAP4.error, OSError) as exc:
            raise SourceError(f"{self.base}: {failure_reason(exc, self.password)}") from exc
        if "LOGINDISABLED" in conn.capabilities:
            # Checked before LOGIN, which would send the password in the clear anyway.
            shut(conn)
            raise SourceError(f"{self.base}: the server refuses passwords without TLS: use imaps://")
        try:
            if self.username.isascii() and self.password.isascii():
                conn.login(self.username, self.password)
            else:
                # LOGIN is ASCII only in imaplib; SASL PLAIN carries UTF-8.
                credentials = f"\0{self.username}\0{self.password}".encode()
                conn.authenticate("PLAIN", lambda _: credentials)
        except imaplib.IMAP4.error as exc:
            shut(conn)
            if isinstance(exc, imaplib.IMAP4.abort):
                raise SourceError(f"{self.base}: {failure_reason(exc, self.password)}") from exc
            raise SourceError(f"{self.base}: login failed: {server_text(exc, self.password)}") from exc
        except OSError as exc:
            shut(conn)
            raise SourceError(f"{self.base}: {failure_reason(exc, self.password)}") from exc
        self._conn = conn
        return conn

    def _command(self, conn: imaplib.IMAP4, *args: str) -> list[object]:
        """Run a UID command (FETCH ...); anything short of OK is the source's failure."""
        try:
            typ, data = conn.uid(*args)
        except (imaplib.IMAP4.error, OSError) as exc:
            self._drop()
            if isinstance(exc, imaplib.IMAP4.abort | OSError):
                raise _Lost(f"{self._location}: {failure_reason(exc, self.password)}") from exc
            raise SourceError(f"{self._location}: {server_text(exc, self.password)}") from exc
        if typ != "OK":
            raise SourceError(f"{self._location}: UID {args[0]} failed: "
                              f"{server_text(data[-1] if data else b'', self.password)}")
        return list(data)

    def _drop(self) -> None:
        conn, self._conn, self._uidvalidity = self._conn, None, None
        if conn is not None:
            shut(conn)
