"""An SMB/CIFS share (Windows file server, Samba, a NAS) as a source, with its permissions.

Each file's readers come from its security descriptor, read over SMB2 (QUERY_INFO for the
owner, group and DACL): every ACCESS_ALLOWED ACE that grants reading the data names a
reader, as ``sid:S-…``, and also by name where the SID says it without a directory lookup:
Samba's unix users and groups (``S-1-22-1-<uid>``, ``S-1-22-2-<gid>``, named through this
host's passwd and group databases, so only when it shares them with the file server) and
Everyone (``S-1-1-0`` -> ``other``). The source's mapping turns those into enclave groups.

The change signal is the modification time and size from the directory listing, which
costs nothing more; the access signal is a hash of the descriptor's bytes, so a chgrp, a
chmod or an ACL edit re-reads permissions without re-embedding the content. Reading the
descriptor costs one round trip per file (create, query and close sent as one compound
request).

It uses smbprotocol's ``smbclient`` with a connection cache of its own, so two connectors
(two sources on one server, or one sync beside another) never share a session.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import smbclient
from smbclient._io import SMBFileIO, SMBRawIO
from smbclient._pool import ClientConfig
from smbprotocol.exceptions import SMBAuthenticationError, SMBException
from smbprotocol.tree import TreeConnect
from spnego.exceptions import SpnegoError

from core.errors import SourceError, TooLarge, UnreadableFile
from ingest.sources.base import Entry, Fetched
from ingest.sources.smb_acl import parse_descriptor, query_security, readers

# Re-exported: callers and tests know the descriptor's parser by this module.
__all__ = ["SmbConnector", "parse_descriptor", "readers"]

# SMB2 and MS-DTYP constants, spelled out where smbprotocol does not name them.
_FILE_READ_DATA = 0x1
_FILE_READ_ATTRIBUTES = 0x80
_READ_CONTROL = 0x20000
_ATTR_DIRECTORY = 0x10
_ATTR_REPARSE_POINT = 0x400
_CHUNK = 1 << 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# NTSTATUS codes that mean "these credentials are no good", however the server words it.
_LOGON_STATUSES = {
    0xC000006D,  # STATUS_LOGON_FAILURE
    0xC000006E,  # STATUS_ACCOUNT_RESTRICTION
    0xC0000064,  # STATUS_NO_SUCH_USER
    0xC000006A,  # STATUS_WRONG_PASSWORD
    0xC0000071,  # STATUS_PASSWORD_EXPIRED
    0xC0000072,  # STATUS_ACCOUNT_DISABLED
    0xC0000234,  # STATUS_ACCOUNT_LOCKED_OUT
}
_STATUS_BAD_NETWORK_NAME = 0xC00000CC
_STATUS_ACCESS_DENIED = 0xC0000022
_NOT_FOUND_STATUSES = {0xC0000034, 0xC000003A}  # OBJECT_NAME_NOT_FOUND, OBJECT_PATH_NOT_FOUND
_STATUS_NOT_A_DIRECTORY = 0xC0000103
# What smbclient raises: a server's answer (SMBException, SMBOSError), a socket's trouble
# (OSError), a failed connect (ValueError), an authentication that went wrong (SpnegoError).
_SMB_ERRORS = (SMBException, OSError, ValueError, SpnegoError)


class SmbConnector:
    """``smb://host[:port]/share[/path]``: every file under the path, with who may read it.

    ``include``/``exclude`` are fnmatch globs on the path relative to the URL's folder
    (no include: everything). ``resolve_unix_ids`` names Samba's unix SIDs through this
    host's users and groups; turn it off when the file server's uids and gids mean other
    people here (the ``sid:`` principals are emitted either way).
    """

    def __init__(self, url: str, *, username: str, password: str, include: Sequence[str] = (),
                 exclude: Sequence[str] = (), max_bytes: int = 100 * 2**20, timeout_s: float = 30.0,
                 resolve_unix_ids: bool = True) -> None:
        self.host, self.port, self.share, self.folder = _parse_url(url)
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.resolve_unix_ids = resolve_unix_ids
        self._username = username or None
        self._password = password or None
        # Ours alone: smbclient's global cache would hand this source's session to another.
        self._cache: dict[str, Any] = {}

    # Where things are, without credentials: for messages, locations and the share's UNC.

    @property
    def base(self) -> str:
        return f"smb://{self.host}:{self.port}/{self.share}"

    def location(self, relative: str = "") -> str:
        return posixpath.join(self.base, *self.folder, *([relative] if relative else []))

    def _unc(self, relative: str = "") -> str:
        parts = [*self.folder, *(relative.split("/") if relative else [])]
        return "\\\\" + "\\".join([self.host, self.share, *parts])

    def _kwargs(self) -> dict[str, Any]:
        # Credentials go with every call: when the server drops an idle connection smbclient
        # reconnects on the next call, and without them it would try Kerberos instead.
        return {"username": self._username, "password": self._password, "port": self.port,
                "connection_cache": self._cache, "connection_timeout": self.timeout_s}

    def _connect(self) -> None:
        try:
            session = smbclient.register_session(
                self.host, username=self._username, password=self._password, port=self.port,
                connection_timeout=self.timeout_s, connection_cache=self._cache)
            # The share itself, connected here: through smbclient a missing share comes back
            # as whatever its DFS fallback says ("not found"), not as "no such share".
            share = rf"\\{self.host}\{self.share}"
            if not any(t.share_name == share for t in session.tree_connect_table.values()):
                TreeConnect(session, share).connect(
                    require_secure_negotiate=ClientConfig().require_secure_negotiate)
        except _SMB_ERRORS as exc:
            raise self._source_error(exc, self.base) from None

    # The Connector protocol.

    def entries(self) -> Iterator[Entry]:
        self._connect()
        root = self.location()
        try:
            listing = self._list("")
        except _SMB_ERRORS as exc:
            raise self._source_error(exc, root) from None
        # Directories already walked, by file id: a server-side symlink loop ends here.
        seen: set[int] = set()
        stack: list[tuple[str, list[Any]]] = [("", listing)]
        while stack:
            folder, items = stack.pop()
            subfolders: list[str] = []
            for item in items:
                name: str = item.name
                if not _safe_name(name):
                    continue
                relative = posixpath.join(folder, name) if folder else name
                info = item.smb_info
                if info.file_attributes & _ATTR_REPARSE_POINT:
                    continue  # a link or junction: never followed out of the share
                if info.file_attributes & _ATTR_DIRECTORY:
                    if info.file_id not in seen:
                        seen.add(info.file_id)
                        subfolders.append(relative)
                    continue
                if not _wanted(relative, self.include, self.exclude):
                    continue
                yield self._entry(relative, info)
            for sub in reversed(subfolders):
                try:
                    stack.append((sub, self._list(sub)))
                except _SMB_ERRORS as exc:
                    # A folder that cannot be listed looks like one whose files are gone.
                    raise SourceError(
                        f"listing incomplete: {self._source_error(exc, self.location(sub))}"
                    ) from None

    def fetch(self, entry: Entry, folder: Path) -> Fetched:
        relative = entry.key
        if not _safe_relative(relative):
            raise UnreadableFile(f"refused path {relative!r}")
        self._connect()
        where = self.location(relative)
        target = folder / _safe_filename(entry.filename or posixpath.basename(relative))
        try:
            raw = SMBFileIO(self._unc(relative), mode="r", share_access="rwd",
                            desired_access=_FILE_READ_DATA | _FILE_READ_ATTRIBUTES | _READ_CONTROL,
                            **self._kwargs())
            with raw:
                size = int(raw.fd.end_of_file)
                if size > self.max_bytes:
                    raise TooLarge(f"{size / 1e6:.1f} MB is over the {self.max_bytes / 1e6:.1f} MB limit")
                descriptor = query_security(raw)
                # Reads stop at the size the open reported: a file growing now stays bounded.
                with target.open("wb") as out:
                    while chunk := raw.read(_CHUNK):
                        out.write(chunk)
        except _SMB_ERRORS as exc:
            target.unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.filename == str(target):
                # The scratch folder's trouble, not the share's.
                raise UnreadableFile(f"cannot write {target.name}: {exc.strerror or exc}") from None
            raise self._file_error(exc, where) from None
        return Fetched(target, readers(descriptor, resolve_unix_ids=self.resolve_unix_ids))

    def close(self) -> None:
        smbclient.reset_connection_cache(fail_on_error=False, connection_cache=self._cache)

    # Listing and permissions.

    def _list(self, relative: str) -> list[Any]:
        """One folder's items, read whole (no handle held while the sync works), by name."""
        with smbclient.scandir(self._unc(relative), **self._kwargs()) as found:
            return sorted(found, key=lambda item: item.name)

    def _entry(self, relative: str, info: Any) -> Entry:
        mtime_ns = (info.last_write_time - _EPOCH) // timedelta(microseconds=1) * 1000
        principals: tuple[str, ...] = ()
        access = ""
        try:
            descriptor = self._security(relative)
        except _SMB_ERRORS as exc:
            if _status(exc) is None:
                raise self._source_error(exc, self.location(relative)) from None
            # The server refused this one file's descriptor: no readers until fetch reads it
            # again (and fails alone if it still cannot).
        else:
            principals = readers(descriptor, resolve_unix_ids=self.resolve_unix_ids)
            access = hashlib.sha256(descriptor).hexdigest()
        return Entry(key=relative, signal=f"{mtime_ns}:{info.end_of_file}",
                     location=self.location(relative), display=relative,
                     filename=posixpath.basename(relative), principals=principals,
                     access_signal=access)

    def _security(self, relative: str) -> bytes:
        # Opened for READ_CONTROL alone: reading permissions needs no right to the content.
        raw = SMBRawIO(self._unc(relative), mode="r", share_access="rwd", desired_access=_READ_CONTROL,
                       **self._kwargs())
        return query_security(raw)

    # Errors, worded for a job's reason: never the password, always where.

    def _source_error(self, exc: BaseException, where: str) -> SourceError:
        status = _status(exc)
        if status in _LOGON_STATUSES or _is_auth_error(exc):
            return SourceError(f"{self.base}: logon failed")
        if status == _STATUS_BAD_NETWORK_NAME:
            return SourceError(f"{self.base}: no such share")
        if status in _NOT_FOUND_STATUSES:
            return SourceError(f"{where}: no such folder")
        if status == _STATUS_NOT_A_DIRECTORY:
            return SourceError(f"{where}: not a folder")
        if status == _STATUS_ACCESS_DENIED:
            return SourceError(f"{where}: access denied")
        refused = _refused(exc)
        if refused:
            return SourceError(f"{self.base}: cannot connect: {refused}")
        return SourceError(f"{where}: {self._scrub(_reason(exc))}")

    def _file_error(self, exc: BaseException, where: str) -> Exception:
        status = _status(exc)
        if status is None or status in _LOGON_STATUSES or status == _STATUS_BAD_NETWORK_NAME:
            return self._source_error(exc, where)
        if status in _NOT_FOUND_STATUSES:
            return UnreadableFile("gone since it was listed")
        if status == _STATUS_ACCESS_DENIED:
            return UnreadableFile("access denied")
        return UnreadableFile(self._scrub(_reason(exc)))

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text


# Paths and names.


def _parse_url(url: str) -> tuple[str, int, str, tuple[str, ...]]:
    try:
        parts = urlsplit(url)
        port = parts.port or 445
    except ValueError as exc:
        raise SourceError(f"not an smb:// URL: {exc}") from None
    if parts.scheme.lower() != "smb" or not parts.hostname:
        raise SourceError("an SMB source needs a URL like smb://host[:port]/share[/folder]")
    if parts.username or parts.password:
        raise SourceError("an smb:// URL must not hold credentials: give them to the source")
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not segments:
        raise SourceError(f"smb://{parts.hostname}:{port}: the URL names no share")
    if any(not _safe_name(s) or "\\" in s for s in segments):
        raise SourceError(f"smb://{parts.hostname}:{port}: refused path {parts.path!r}")
    return parts.hostname, port, segments[0], tuple(segments[1:])


def _safe_name(name: str) -> bool:
    """A name the walk takes: no hidden files, no dot segments, no separators."""
    return bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name


def _safe_relative(relative: str) -> bool:
    parts = relative.split("/")
    return bool(relative) and all(_safe_name(p) for p in parts)


def _safe_filename(name: str) -> str:
    name = name.replace("/", "_").replace("\\", "_")
    return name if name not in ("", ".", "..") else "file"


def _wanted(relative: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if include and not any(fnmatch(relative, p) for p in include):
        return False
    return not any(fnmatch(relative, p) for p in exclude)


def _status(exc: BaseException) -> int | None:
    """The NTSTATUS the server answered with, or None when it did not answer at all."""
    for error in _chain(exc):
        status = getattr(error, "ntstatus", None) or getattr(error, "status", None)
        if isinstance(status, int):
            return status
    return None


def _is_auth_error(exc: BaseException) -> bool:
    return any(isinstance(e, SMBAuthenticationError | SpnegoError) for e in _chain(exc))


def _refused(exc: BaseException) -> str | None:
    """Why no connection could be made (refused, unreachable, timed out), if that is why."""
    for error in _chain(exc):
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, TimeoutError):
            return "timed out"
        if isinstance(error, OSError) and not hasattr(error, "ntstatus") and error.strerror:
            return error.strerror.lower()
    text = str(exc)
    if text.startswith("Failed to connect to"):
        return text.split(": ", 1)[-1]
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]

