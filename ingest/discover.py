"""Turn the paths an admin names into the files to ingest, lazily.

Folders are walked without following symlinked folders into loops; a symlink loop, a
dangling link or an unreadable folder becomes a failed entry with its reason, never an
exception that stops the run. Paths are yielded one at a time, so a share of 100k files
is never held in memory.

Jobs confined to allowed folders pass ``allowed``: an entry that resolves outside them (a
link to /etc planted in a share) becomes one skipped entry, is never walked, and its
target is never named, since naming it would tell an admin what lies outside.

``private`` folders (enclave's own data folder: its database, store, audit texts and keys)
are never walked, even when an admin names a folder that holds them: they must never
become documents employees can search.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

OUTSIDE = "skipped: a link that leads outside the allowed folders"

Allowed = Callable[[Path], bool]


@dataclass(frozen=True, slots=True)
class Found:
    path: Path  # as named or walked, for messages
    resolved: Path | None  # the real file, or None when it cannot be reached
    problem: str | None = None
    # The path relative to the folder it was found in (a file named directly: its name);
    # what employees see instead of the server's path. None: the file name.
    display: str | None = None
    # The document's source, when it is not the file's own path: a sync fetches an
    # smb://, imap:// or https:// entry into a scratch file, and cites the entry.
    source: str | None = None
    # What its source says of it, kept with every chunk: a message's From, To, Date and
    # Subject; the message an attachment came with ("parent").
    meta: tuple[tuple[str, str], ...] = ()

    @property
    def source_name(self) -> str:
        """What the document is called in enclave: ``source``, else the file's real path."""
        return self.source or str(self.resolved or self.path.absolute())

    @property
    def reason(self) -> str:
        """Why it cannot be ingested, as one line (only when ``resolved`` is None)."""
        return OUTSIDE if self.problem == OUTSIDE else f"unreadable: {self.problem}"

    @property
    def display_name(self) -> str:
        return self.display or (self.resolved or self.path).name


def discover(paths: Iterable[Path], allowed: Allowed | None = None,
             private: Iterable[Path] = ()) -> Iterator[Found]:
    """``allowed``: whether a real path may be read; entries it refuses are not walked.
    ``private``: folders never walked (see the module's docstring)."""
    seen_files: set[tuple[int, int]] = set()
    seen_dirs: set[tuple[int, int]] = set()
    for folder in private:
        try:
            stat = Path(folder).stat()
        except OSError:
            continue  # not there yet: nothing in it to skip
        seen_dirs.add((stat.st_dev, stat.st_ino))
    private_dirs = frozenset(seen_dirs)
    for path in paths:
        top = Path(path)
        yield from _walk(top, top, allowed, seen_files, seen_dirs, private_dirs)


def _walk(
    path: Path, top: Path, allowed: Allowed | None,
    seen_files: set[tuple[int, int]], seen_dirs: set[tuple[int, int]],
    private_dirs: frozenset[tuple[int, int]] = frozenset(),
) -> Iterator[Found]:
    try:
        resolved = path.resolve(strict=True)
        stat = resolved.stat()
    except RuntimeError:
        yield Found(path, None, "symlink loop")
        return
    except FileNotFoundError:
        problem = "dangling symlink" if path.is_symlink() else "no such file or folder"
        if allowed is not None and path.is_symlink() and not allowed(path.resolve()):
            # A link out of the roots is skipped alike whether its target exists or not:
            # "dangling" would tell what does not exist outside.
            problem = OUTSIDE
        yield Found(path, None, problem)
        return
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            yield Found(path, None, "symlink loop")
        else:
            yield Found(path, None, exc.strerror or str(exc))
        return
    if allowed is not None and not allowed(resolved):
        yield Found(path, None, OUTSIDE)
        return

    key = (stat.st_dev, stat.st_ino)
    if resolved.is_dir():
        if key in seen_dirs:
            if key in private_dirs:
                log.warning("not ingesting %s: it is enclave's own data folder", path)
            return  # reached again through a link: already walked
        seen_dirs.add(key)
        try:
            entries = sorted(os.scandir(resolved), key=lambda e: e.name)
        except OSError as exc:
            yield Found(path, None, f"cannot list folder: {exc.strerror or exc}")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue  # .git, .DS_Store and editor droppings are not documents
            yield from _walk(path / entry.name, top, allowed, seen_files, seen_dirs,
                             private_dirs)
        return
    if not resolved.is_file():
        yield Found(path, None, "not a regular file")
        return
    if key in seen_files:
        return  # the same file named twice, or linked from two places
    seen_files.add(key)
    display = path.name if path == top else path.relative_to(top).as_posix()
    yield Found(path, resolved, display=display)
