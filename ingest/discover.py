"""Turn the paths an admin names into the files to ingest, lazily.

Folders are walked without following symlinked folders into loops; a symlink loop, a
dangling link or an unreadable folder becomes a failed entry with its reason, never an
exception that stops the run. Paths are yielded one at a time, so a share of 100k files
is never held in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Found:
    path: Path  # as named or walked, for messages
    resolved: Path | None  # the real file, or None when it cannot be reached
    problem: str | None = None


def discover(paths: Iterable[Path]) -> Iterator[Found]:
    seen_files: set[tuple[int, int]] = set()
    seen_dirs: set[tuple[int, int]] = set()
    for path in paths:
        yield from _walk(Path(path), seen_files, seen_dirs)


def _walk(
    path: Path, seen_files: set[tuple[int, int]], seen_dirs: set[tuple[int, int]]
) -> Iterator[Found]:
    try:
        resolved = path.resolve(strict=True)
        stat = resolved.stat()
    except RuntimeError:
        yield Found(path, None, "symlink loop")
        return
    except FileNotFoundError:
        problem = "dangling symlink" if path.is_symlink() else "no such file or folder"
        yield Found(path, None, problem)
        return
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            yield Found(path, None, "symlink loop")
        else:
            yield Found(path, None, exc.strerror or str(exc))
        return

    key = (stat.st_dev, stat.st_ino)
    if resolved.is_dir():
        if key in seen_dirs:
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
            yield from _walk(path / entry.name, seen_files, seen_dirs)
        return
    if not resolved.is_file():
        yield Found(path, None, "not a regular file")
        return
    if key in seen_files:
        return  # the same file named twice, or linked from two places
    seen_files.add(key)
    yield Found(path, resolved)
