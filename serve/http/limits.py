"""Per-key rate limits and a bound on answers generated at once: refuse early, never pile up."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from core.errors import Busy, RateLimited

log = logging.getLogger(__name__)


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests, refilled continuously."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.refill_per_s = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.refill_per_s)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.refill_per_s
                raise RateLimited(f"rate limit: {self.capacity:g} requests a minute per key",
                                  retry_after_s=wait)
            self._buckets[key] = (tokens - 1.0, now)


class Lease:
    """One answer slot, held from the moment an answer is admitted until its work has ended.

    Giving it back twice is harmless: the work's own end and the response's end both do,
    whichever comes last, and the gate's safety net may have reclaimed it already.
    """

    def __init__(self, gate: AnswerGate, number: int, label: str, taken_at: float) -> None:
        self._gate = gate
        self.number = number
        self.label = label
        self.taken_at = taken_at
        # The thread doing the answer's work, once it started: a reclaimed lease whose
        # thread still runs is an answer stuck past the timeout, not a forgotten slot.
        self.worker: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self._gate._holds(self)

    def working(self) -> bool:
        return self.worker is not None and self.worker.is_alive()

    def release(self) -> None:
        self._gate._release(self)


class AnswerGate:
    """At most ``slots`` answers in progress; the next caller is told to come back.

    A slot is a :class:`Lease`. Leases are given back by the code that took them, whatever
    the client does. As a safety net against a path that forgets, a lease held longer than
    ``hold_limit_s`` (the answer timeout) is reclaimed, with a warning, when the next
    caller asks for a slot or readiness is checked. If its answer's thread is still
    running, it still counts as busy for :meth:`saturated_for` (answering is stuck), but
    no longer keeps a new answer out.
    """

    def __init__(self, slots: int, hold_limit_s: float = 150.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = slots
        self.hold_limit_s = hold_limit_s
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[int, Lease] = {}
        self._overdue: dict[int, Lease] = {}
        self._numbers = itertools.count(1)
        self._full_since: float | None = None
        self.reclaimed = 0

    def take(self, label: str = "answer") -> Lease:
        self.reap()
        with self._lock:
            if len(self._held) >= self.size:
                raise Busy(f"all {self.size} answer slots are busy; retry shortly",
                           retry_after_s=1.0)
            lease = Lease(self, next(self._numbers), label, self._clock())
            self._held[lease.number] = lease
            self._note_busy()
            return lease

    def busy(self) -> int:
        """Answers in progress: slots held, and reclaimed ones whose work still runs."""
        with self._lock:
            return self._busy()

    def saturated_for(self) -> float:
        """How long every slot has been busy without a pause (0: one is free)."""
        self.reap()
        with self._lock:
            self._note_busy()
            return 0.0 if self._full_since is None else self._clock() - self._full_since

    def reap(self) -> int:
        """Reclaim leases held past the answer timeout; returns how many."""
        now = self._clock()
        with self._lock:
            stale = [lease for lease in self._held.values()
                     if now - lease.taken_at > self.hold_limit_s]
            for lease in stale:
                del self._held[lease.number]
                if lease.working():
                    self._overdue[lease.number] = lease
            for number in [n for n, lease in self._overdue.items() if not lease.working()]:
                del self._overdue[number]
            self.reclaimed += len(stale)
            self._note_busy()
        for lease in stale:
            state = "its answer is still running" if lease.working() else "it was never given back"
            log.warning("answer slot %d (%s) held for %.0f s, past the answer timeout of %g s: "
                        "reclaimed (%s)", lease.number, lease.label, now - lease.taken_at,
                        self.hold_limit_s, state)
        return len(stale)

    def _busy(self) -> int:
        return len(self._held) + sum(1 for lease in self._overdue.values() if lease.working())

    def _note_busy(self) -> None:
        if self._busy() >= self.size:
            if self._full_since is None:
                self._full_since = self._clock()
        else:
            self._full_since = None

    def _holds(self, lease: Lease) -> bool:
        with self._lock:
            return self._held.get(lease.number) is lease

    def _release(self, lease: Lease) -> bool:
        with self._lock:
            mine = self._held.get(lease.number) is lease
            self._held.pop(lease.number, None)
            self._overdue.pop(lease.number, None)
            self._note_busy()
            return mine

    @contextmanager
    def slot(self, label: str = "answer") -> Iterator[Lease]:
        lease = self.take(label)
        try:
            yield lease
        finally:
            lease.release()
