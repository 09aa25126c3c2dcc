"""Expand .zip and .tar archives into their members, within limits, inside one folder.

Each member becomes a document of its own (see :meth:`ingest.pipeline.Ingestor.ingest_found`);
this module only gets them out safely:

- Nothing is written outside the folder it is given. Members are never extracted under
  their own path: each goes to ``<folder>/<n>/<its file name>``, created exclusively and
  never through a link, so no name an archive holds can point anywhere else. A member
  whose path would leave the archive (``..``, an absolute path) or that is a link is
  refused all the same, with the reason, because an archive that holds one was made to
  attack whoever unpacks it.
- An archive that expands past the limits is refused whole, before any member is
  ingested: more members than ``max_members``, more bytes than ``max_total_mb`` (nested
  archives included), or a member that expands more than ``max_ratio`` times its
  compressed size (a zip bomb). Sizes are counted as bytes come out, not taken from the
  headers, which a hostile archive fills in as it likes.
- Archives inside archives are expanded up to ``max_depth`` levels; their members are
  named ``outer.zip!/inner.tar.gz!/file.pdf``.
- A member that cannot be read (encrypted, corrupt, of a type no parser reads, over the
  per-file size limit, nested too deep) fails alone; the others are still read. Hidden
  members (``.git/``, ``.DS_Store``, macOS's ``__MACOSX/``) are skipped, as discovery skips
  them in folders.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from core.errors import (
    CorruptDocument,
    DocumentError,
    EmptyDocument,
    EncryptedDocument,
    TooLarge,
    UnreadableFile,
    UnsafeContent,
    UnsupportedType,
    one_line,
)
from core.settings import ArchiveSettings
from core.types import MEMBER_SEPARATOR

SEPARATOR = MEMBER_SEPARATOR
_ZIP = (".zip",)
_TAR = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_BLOCK = 1 << 20
# Small members may compress extremely well (a page of blanks); the ratio is judged only
# once a member has expanded past this.
_RATIO_FLOOR = 1 << 20
# A member's file name on disk keeps its end (the extension the parser goes by).
_MAX_NAME = 200

# Why a member's file name cannot be ingested (its type), or None: it can.
TypeCheck = Callable[[str], DocumentError | None]


def is_archive(name: str) -> bool:
    return name.lower().endswith(_ZIP + _TAR)


@dataclass(frozen=True, slots=True)
class Limits:
    max_total_bytes: int
    max_members: int
    max_depth: int
    max_ratio: float
    max_member_bytes: int  # the limit for one file (ENCLAVE_INGEST__MAX_FILE_MB)

    @classmethod
    def of(cls, settings: ArchiveSettings, max_member_bytes: int) -> Limits:
        return cls(int(settings.max_total_mb * 1024 * 1024), settings.max_members,
                   settings.max_depth, settings.max_ratio, max_member_bytes)


@dataclass(frozen=True, slots=True)
class Member:
    name: str  # its path in the archive; in a nested archive "inner.zip!/path"
    path: Path | None  # the extracted file; None when it failed
    sha256: str | None  # of exactly the bytes extracted
    problem: DocumentError | None = None


class ArchiveRefused(TooLarge):
    """The archive as a whole is over a limit: none of its members is ingested."""


def expand(archive: Path, folder: Path, limits: Limits, check: TypeCheck) -> list[Member]:
    """Extract the members of ``archive`` into ``folder`` (created here, must not exist).

    Raises a DocumentError for the archive as a whole: ArchiveRefused over a limit,
    CorruptDocument when it is not a readable archive, EmptyDocument when it holds no file.
    """
    folder.mkdir(mode=0o700)
    members = _Expansion(limits, check).expand(archive, folder, depth=1, prefix="")
    if not members:
        raise EmptyDocument("the archive holds no files")
    return members


@dataclass
class _Entry:
    """One entry of an archive, read in order (tar members can only be read in order)."""

    name: str
    kind: str  # file, dir, link, other
    size: int  # as declared
    packed: int  # its compressed size (tar: the whole archive's)
    encrypted: bool
    open: Callable[[], AbstractContextManager[IO[bytes]]]


class _Expansion:
    """One archive's expansion, nested archives included: they share its limits."""

    def __init__(self, limits: Limits, check: TypeCheck) -> None:
        self.limits = limits
        self.check = check
        self.members = 0
        self.written = 0
        self.folders = 0

    def expand(self, archive: Path, folder: Path, depth: int, prefix: str) -> list[Member]:
        lower = archive.name.lower()
        entries = self._zip(archive) if lower.endswith(_ZIP) else self._tar(archive)
        members: list[Member] = []
        seen: set[str] = set()
        for entry in entries:
            if entry.kind == "dir":
                continue
            self.members += 1
            if self.members > self.limits.max_members:
                raise ArchiveRefused(f"more than {self.limits.max_members} members")
            name, problem = _safe_name(entry.name)
            if problem is None and _hidden(name):
                continue
            if problem is None:
                problem = self._refusal(entry, name, depth, seen)
            seen.add(name)
            if problem is not None:
                members.append(Member(prefix + name, None, None, problem))
                continue
            members.extend(self._extract(entry, name, folder, depth, prefix))
        return members

    def _refusal(self, entry: _Entry, name: str, depth: int, seen: set[str]) -> DocumentError | None:
        """Why this member is not extracted, or None."""
        if entry.kind == "link":
            return UnsafeContent("a link inside the archive; links are not followed")
        if entry.kind != "file":
            return UnsupportedType("not a regular file (a device or a pipe)")
        if name in seen:
            return CorruptDocument("the archive holds this path twice; only the first is read")
        if entry.encrypted:
            return EncryptedDocument("password-protected archive member")
        if is_archive(name):
            if depth >= self.limits.max_depth:
                return TooLarge(f"an archive nested more than {self.limits.max_depth} deep")
            return None
        if (problem := self.check(name)) is not None:
            return problem
        if entry.size > self.limits.max_member_bytes:
            return _too_large(entry.size, self.limits.max_member_bytes)
        return None

    def _extract(self, entry: _Entry, name: str, folder: Path, depth: int,
                 prefix: str) -> list[Member]:
        self.folders += 1
        home = folder / str(self.folders)
        home.mkdir(mode=0o700)
        target = home / _file_name(name)
        nested = is_archive(name)
        # A nested archive is bounded by what is left of the total; a document by the
        # per-file limit too.
        limit = self.limits.max_total_bytes if nested else self.limits.max_member_bytes
        try:
            digest = self._write(entry, target, limit)
        except ArchiveRefused:
            raise
        except DocumentError as exc:
            target.unlink(missing_ok=True)
            return [Member(prefix + name, None, None, exc)]
        if not nested:
            return [Member(prefix + name, target, digest)]
        try:
            inner = self.expand(target, home, depth + 1, prefix + name + SEPARATOR)
        except ArchiveRefused:
            raise
        except DocumentError as exc:  # the inner archive is unreadable: it fails alone
            return [Member(prefix + name, None, None, exc)]
        finally:
            target.unlink(missing_ok=True)  # not a document: its members are
        return inner or [Member(prefix + name, None, None,
                                EmptyDocument("the archive holds no files"))]

    def _write(self, entry: _Entry, target: Path, limit: int) -> str:
        digest = hashlib.sha256()
        written = 0
        # O_EXCL | O_NOFOLLOW: a fresh file in a folder made just now, never through a link.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            try:
                with entry.open() as stream:
                    while block := stream.read(_BLOCK):
                        written += len(block)
                        self.written += len(block)
                        if self.written > self.limits.max_total_bytes:
                            raise ArchiveRefused(
                                f"expands to more than {_mb(self.limits.max_total_bytes)} "
                                "(ENCLAVE_ARCHIVES__MAX_TOTAL_MB)")
                        if written > limit:
                            raise _too_large(written, limit)
                        if (written > _RATIO_FLOOR
                                and written > self.limits.max_ratio * max(entry.packed, 1)):
                            raise ArchiveRefused(
                                f"a member expands more than {self.limits.max_ratio:g} times "
                                "its compressed size (a zip bomb?)")
                        digest.update(block)
                        out.write(block)
            except DocumentError:
                raise
            except (zipfile.BadZipFile, zlib.error, EOFError, tarfile.TarError, OSError,
                    ValueError, NotImplementedError) as exc:
                # A bad CRC, a truncated stream, a compression method zipfile lacks.
                raise CorruptDocument(f"cannot extract it: {one_line(exc)}") from exc
        return digest.hexdigest()

    def _wanted(self, raw: str) -> bool:
        """Whether a member of this name would be extracted (its type read, or an archive)."""
        name, problem = _safe_name(raw)
        return (problem is None and not _hidden(name)
                and (is_archive(name) or self.check(name) is None))

    # -- the two formats ---------------------------------------------------------------------

    def _zip(self, archive: Path) -> Iterator[_Entry]:
        try:
            package = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
            raise CorruptDocument(f"not a readable zip archive: {one_line(exc)}") from exc
        with package:
            infos = package.infolist()
            files = [i for i in infos if not i.is_dir()]
            # The central directory can be read before anything is written: refuse what
            # declares too much at once. What it does not declare is counted as it comes out.
            if self.members + len(files) > self.limits.max_members:
                raise ArchiveRefused(f"{len(files)} members, over the limit of "
                                     f"{self.limits.max_members} (ENCLAVE_ARCHIVES__MAX_MEMBERS)")
            # Only what will be extracted counts: a video beside the documents is skipped.
            wanted = [i for i in files if self._wanted(i.filename)]
            declared = sum(i.file_size for i in wanted)
            if self.written + declared > self.limits.max_total_bytes:
                raise ArchiveRefused(f"declares {_mb(declared)} of members, over the limit of "
                                     f"{_mb(self.limits.max_total_bytes)} "
                                     "(ENCLAVE_ARCHIVES__MAX_TOTAL_MB)")
            for info in wanted:
                if (info.file_size > _RATIO_FLOOR
                        and info.file_size > self.limits.max_ratio * max(info.compress_size, 1)):
                    raise ArchiveRefused(
                        f"a member declares {info.file_size / max(info.compress_size, 1):,.0f} "
                        f"times its compressed size, over the limit of "
                        f"{self.limits.max_ratio:g} (a zip bomb?)")
            for info in infos:
                # Unix tools store the file's mode; others (Python's own writestr among
                # them) only permissions, or nothing, for a plain file.
                kind_bits = stat.S_IFMT(info.external_attr >> 16)
                kind = ("dir" if info.is_dir() else "link" if kind_bits == stat.S_IFLNK
                        else "other" if kind_bits not in (0, stat.S_IFREG) else "file")
                yield _Entry(info.filename, kind, info.file_size, info.compress_size,
                             bool(info.flag_bits & 0x1),
                             lambda info=info: package.open(info))  # type: ignore[misc]

    def _tar(self, archive: Path) -> Iterator[_Entry]:
        try:
            # A stream ("r|*"): read once, front to back, whatever the compression.
            package = tarfile.open(archive, mode="r|*")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise CorruptDocument(f"not a readable tar archive: {one_line(exc)}") from exc
        packed = archive.stat().st_size
        with package:
            try:
                for info in package:
                    kind = ("dir" if info.isdir() else "link" if info.issym() or info.islnk()
                            else "file" if info.isfile() else "other")
                    # tar compresses all members as one stream: no member can honestly
                    # expand past the ratio times the whole archive.
                    yield _Entry(info.name, kind, info.size, packed, False,
                                 lambda info=info: _TarMember(package, info))  # type: ignore[misc]
            except DocumentError:
                raise
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                raise CorruptDocument(f"the tar archive breaks off: {one_line(exc)}") from exc


class _TarMember(AbstractContextManager[IO[bytes]]):
    """A tar member's data, as a context manager like ZipFile.open's."""

    def __init__(self, package: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        stream = package.extractfile(info)
        if stream is None:
            raise UnreadableFile("the member has no data")
        self.stream: IO[bytes] = stream

    def __enter__(self) -> IO[bytes]:
        return self.stream

    def __exit__(self, *_: object) -> None:
        self.stream.close()


def _safe_name(raw: str) -> tuple[str, DocumentError | None]:
    """The member's path as it is named in sources, and why it is refused (None: it is not)."""
    name = raw.replace("\\", "/")
    if any(unicodedata.category(c) == "Cc" for c in name):
        shown = "".join(c if unicodedata.category(c) != "Cc" else "?" for c in name)
        return shown, UnsafeContent("a member name with control characters")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return name, UnsafeContent("an absolute member path; it would be written outside")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return name, UnsafeContent("a member path with '..'; it would be written outside")
    return "/".join(parts) or "?", None


def _hidden(name: str) -> bool:
    """Not a document: what discovery skips in folders (.git, .DS_Store), and the resource
    forks macOS adds to every zip it makes (__MACOSX/._report.pdf)."""
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


def _file_name(name: str) -> str:
    """The member's file name on disk: its last part, shortened from the front if need be."""
    base = name.rsplit("/", 1)[-1]
    encoded = base.encode()
    if len(encoded) > _MAX_NAME:
        base = encoded[-_MAX_NAME:].decode(errors="ignore")
    return base or "member"


def _too_large(size: int, limit: int) -> TooLarge:
    return TooLarge(f"{size / 1e6:.1f} MB is over the {limit / 1e6:.1f} MB limit")


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"
