"""A private copy of a file, hashed while it is copied, for the parser to read.

A file on a share can be rewritten while it is ingested. Hashing the file and parsing it
separately would register one content under the hash of another, and the next run, seeing
the same hash, would call the wrong text "unchanged" for good. Copying once and hashing
the very bytes copied ties the version to the text the parser reads.

Copies live in ``<data dir>/scratch/<random>/<file name>``: the file name is kept because
the parser chooses by extension and falls back to the stem for a title. Each folder goes
when its ingest ends, whatever happens; a process killed midway leaves one behind, which
the next start removes once it is a day old (younger ones may belong to a live worker).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.errors import TooLarge, UnreadableFile

log = logging.getLogger(__name__)

_BLOCK = 1 << 20
STALE_AFTER_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    path: Path  # the private copy
    sha256: str  # of exactly the bytes in the copy


def sha256_of(path: Path) -> str:
    """The hash of a file as it is now: the cheap check for an unchanged file."""
    digest = hashlib.sha256()
    with _reading(), path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def _reading() -> Iterator[None]:
    """File system errors while a file is read, as the reason a user reads."""
    try:
        yield
    except FileNotFoundError as exc:
        raise UnreadableFile("the file vanished during the run") from exc
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc)) from exc


@contextmanager
def snapshot(path: Path, scratch: Path, max_bytes: int) -> Iterator[Snapshot]:
    """Copy ``path`` into a folder of its own under ``scratch``, removed on leaving.

    Raises TooLarge before copying a file already over ``max_bytes``, and while copying
    one that grows past it, so a huge file never fills the data disk.
    """
    folder = scratch / uuid.uuid4().hex
    folder.mkdir(parents=True, mode=0o700)
    try:
        copy = folder / path.name
        digest = _copy(path, copy, max_bytes)
        yield Snapshot(copy, digest)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _copy(path: Path, copy: Path, max_bytes: int) -> str:
    digest = hashlib.sha256()
    with _reading(), path.open("rb") as source:
        size = os.fstat(source.fileno()).st_size
        if size > max_bytes:
            raise TooLarge(f"{size / 1e6:.1f} MB is over the {max_bytes / 1e6:.1f} MB limit")
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            written = 0
            for block in iter(lambda: source.read(_BLOCK), b""):
                written += len(block)
                if written > max_bytes:
                    raise TooLarge(f"grew past the {max_bytes / 1e6:.1f} MB limit while read")
                digest.update(block)
                out.write(block)
    return digest.hexdigest()


def clean_stale(scratch: Path, older_than_s: float = STALE_AFTER_S) -> int:
    """Remove copies left by processes killed midway; returns how many folders went."""
    cutoff = time.time() - older_than_s
    removed = 0
    try:
        entries = list(os.scandir(scratch))
    except FileNotFoundError:
        return 0
    except OSError as exc:
        log.warning("cannot list the scratch folder: %s", exc.strerror or exc)
        return 0
    for entry in entries:
        try:
            if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
            removed += 1
        except OSError:
            continue  # another process removed it first
    if removed:
        log.info("removed %d scratch copies left by interrupted runs", removed)
    return removed
