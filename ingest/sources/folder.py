"""A folder on this machine (or a share mounted on it) as a source, with its permissions.

Each file's readers come from its POSIX owner, group and mode: the owning group when the
group may read it ("group:NAME"), the owner ("user:NAME"), and "other" when everyone may.
The source's mapping turns those into enclave groups. The change signal is modification
time and size; the access signal, owner, group and mode (a chgrp or chmod changes it
without touching the content, and the next sync re-reads only the permissions).
"""

from __future__ import annotations

import grp
import pwd
import stat
from collections.abc import Iterator, Sequence
from fnmatch import fnmatch
from pathlib import Path

from core.errors import SourceError, UnreadableFile
from ingest.discover import OUTSIDE, Allowed, discover
from ingest.sources.base import Entry, Fetched


class FolderConnector:
    def __init__(self, folder: str, *, include: Sequence[str] = (), exclude: Sequence[str] = (),
                 private: Sequence[Path] = (), allowed: Allowed | None = None) -> None:
        self.folder = Path(folder)
        self.allowed = allowed
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.private = tuple(private)

    def entries(self) -> Iterator[Entry]:
        if not self.folder.is_absolute():
            raise SourceError(f"{self.folder}: a folder source needs an absolute path")
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder}: no such folder, or it cannot be read")
        for found in discover([self.folder], self.allowed, private=self.private):
            if found.resolved is None:
                if found.problem and found.problem.startswith("cannot list folder"):
                    # A folder that cannot be listed looks like one whose files are gone.
                    raise SourceError(f"listing incomplete: {found.path}: {found.problem}")
                continue
            relative = found.display_name
            if not _wanted(relative, self.include, self.exclude):
                continue
            try:
                info = found.resolved.stat()
            except OSError:
                continue  # gone since it was listed: the next sync sees it missing
            yield Entry(key=relative, signal=f"{info.st_mtime_ns}:{info.st_size}",
                        location=str(found.resolved), display=relative,
                        filename=found.resolved.name, principals=readers(info),
                        access_signal=f"{info.st_uid}:{info.st_gid}:{stat.S_IMODE(info.st_mode):o}")

    def fetch(self, entry: Entry, folder: Path) -> Fetched:
        # Read in place: the pipeline copies it into its own scratch before parsing.
        path = Path(entry.location)
        try:
            info = path.stat()
            real = path.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise UnreadableFile(f"gone since it was listed: {why}") from exc
        if real != path or (self.allowed is not None and not self.allowed(real)):
            # Swapped for a link since it was listed (to /etc/shadow, say): not followed.
            raise UnreadableFile(OUTSIDE)
        return Fetched(path, readers(info))

    def close(self) -> None:
        pass


def readers(info: object) -> tuple[str, ...]:
    """Who may read a file, by its owner, group and mode."""
    mode = int(getattr(info, "st_mode", 0))
    found: list[str] = []
    if mode & stat.S_IRUSR:
        found.append(f"user:{_user(int(getattr(info, 'st_uid', -1)))}")
    if mode & stat.S_IRGRP:
        found.append(f"group:{_group(int(getattr(info, 'st_gid', -1)))}")
    if mode & stat.S_IROTH:
        found.append("other")
    return tuple(found)


def _wanted(relative: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if include and not any(fnmatch(relative, p) for p in include):
        return False
    return not any(fnmatch(relative, p) for p in exclude)


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
