"""Which paths jobs may read: those inside an allowed root, and uploads.

Answers must not tell an admin of the API what exists outside the roots. A path is first
judged by its text alone (made absolute and normalized, no disk access), so one outside
gets the same refusal whether or not it exists; only a path inside a root is looked up,
and one that a link leads out of gets that same refusal. Whether a path exists is told
only inside the roots.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from core.errors import AccessDenied, InputError, NotFound


class AllowedRoots:
    def __init__(self, roots: Sequence[Path], upload_root: Path | None = None) -> None:
        # Both spellings of a root: as configured (what admins type, even when the root
        # is itself a link) and resolved (what real paths are compared with).
        self.named = [_lexical(r.expanduser()) for r in roots]
        self.resolved = [r.expanduser().resolve() for r in roots]
        self.upload_root = upload_root.resolve() if upload_root is not None else None

    @property
    def configured(self) -> bool:
        return bool(self.resolved)

    def confine(self, path: Path) -> Path:
        """The real path, if it lies inside an allowed root (any, when none are configured)."""
        path = checked(path)
        refused = AccessDenied(
            f"{path}: outside the folders jobs may read (ENCLAVE_JOBS__ALLOWED_ROOTS)"
        )
        if not self._inside_lexically(_lexical(path)):
            raise refused
        try:
            # Links are followed as far as they lead, existing or not: a dangling link out
            # of a root is refused like any other, not reported missing.
            real = path.resolve()
        except (RuntimeError, OSError) as exc:  # a symlink loop inside a root
            raise NotFound(f"{path}: no such file or folder") from exc
        if not self.allowed(real):
            raise refused
        if not real.exists():
            raise NotFound(f"{path}: no such file or folder")
        return real

    def allowed(self, resolved: Path) -> bool:
        """Whether a real (symlink-resolved) path may be read: inside a root, or no roots set."""
        if self.uploaded(resolved):
            return True
        return not self.resolved or any(resolved.is_relative_to(r) for r in self.resolved)

    def uploaded(self, path: Path) -> bool:
        # Called for every file a job walks: no syscalls, the path is resolved already.
        return self.upload_root is not None and path.is_relative_to(self.upload_root)

    def uploads_only(self, paths: Sequence[Path]) -> bool:
        """Whether every path names an upload, judged by its text (see the module's note)."""
        return all(self.uploaded(_lexical(checked(p))) for p in paths)

    def _inside_lexically(self, path: Path) -> bool:
        if not self.resolved or self.uploaded(path):
            return True
        return any(path.is_relative_to(r) for r in (*self.named, *self.resolved))


def checked(path: Path) -> Path:
    """``path`` if it can name a file at all: absolute, with no NUL byte (which the OS
    refuses, and Python's path functions raise ValueError on)."""
    if "\x00" in str(path):
        raise InputError("a path may not contain a NUL byte")
    if not path.is_absolute():
        raise InputError(f"{path}: give an absolute path")
    return path


def _lexical(path: Path) -> Path:
    return Path(os.path.normpath(os.path.abspath(path)))
