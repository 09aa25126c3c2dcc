"""Turns at the embedded store between processes: two flocks beside its directory.

``<dir>.lock`` is held exclusively by the one process that has the store open. Loading the
engine tidies leftover segments before the engine takes a lock of its own, so two loaders
corrupt the store; this lock is what keeps them apart.

``<dir>.want`` is how a process asks for the store. Every process that is about to open it
takes ``.want`` exclusively first, then ``.lock``, and lets ``.want`` go only once it holds
``.lock``. A process that keeps the store open between operations but is willing to give
it up (serve, sharing mode ``yield``) watches ``.want`` with a shared try-lock: when that
fails, someone is waiting, and it closes the store at its next quiet moment.

Why this order holds up:

- A waiter is visible for its whole wait: it holds ``.want`` from before it asks for
  ``.lock`` until it has it, so a yielding holder cannot miss it and never starves it.
- A holder that reopens takes ``.want`` too, so it queues behind a waiter that got there
  first (it cannot slip in between the yield and the waiter's next try), and the waiter,
  once it has ``.lock``, keeps it for its whole session.
- Nobody waits for ``.want`` while holding ``.lock``: the only blocking wait done while
  holding something is for ``.lock`` while holding ``.want``, and the holder of ``.lock``
  either finishes its session, yields, or makes the waiter time out. No cycle, no deadlock.
- Both are flocks, which the kernel drops when a process dies: a killed worker or server
  leaves nothing locked.

Python has no timed flock, so waits poll a non-blocking one: a few system calls per
waiter every few milliseconds.
"""

from __future__ import annotations

import fcntl
import time
from pathlib import Path
from typing import IO

_POLL_S = 0.005


class StoreLock:
    """The two flocks of one store directory, as one process sees them."""

    def __init__(self, path: Path) -> None:
        self.lock_path = path.parent / f"{path.name}.lock"
        self.want_path = path.parent / f"{path.name}.want"
        self._held: IO[str] | None = None
        # For the watcher's try-locks (yield mode only), opened once rather than per look.
        self._watch: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._held is not None

    def acquire(self, wait_s: float) -> bool:
        """Take ``.lock`` within ``wait_s`` (asking through ``.want`` first); False if not."""
        if self._held is not None:
            return True
        deadline = time.monotonic() + wait_s
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        want = self.want_path.open("a")
        try:
            if not _flock_until(want, deadline):
                return False
            lock = self.lock_path.open("a")
            if not _flock_until(lock, deadline):
                lock.close()
                return False
            self._held = lock
            return True
        finally:
            # Only now, with .lock ours (or given up on): until this moment a yielding
            # holder has to see that someone waits.
            want.close()

    def release(self) -> None:
        handle, self._held = self._held, None
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def wanted(self) -> bool:
        """Whether some process (or another store object here) waits for the store now."""
        if self._watch is None:
            self.want_path.parent.mkdir(parents=True, exist_ok=True)
            # Kept for this object's life: the watcher thread may be looking while the store
            # closes, and a handle closed under it would fail that look.
            self._watch = self.want_path.open("a")
        try:
            fcntl.flock(self._watch, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._watch, fcntl.LOCK_UN)
        return False


def _flock_until(handle: IO[str], deadline: float) -> bool:
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)
