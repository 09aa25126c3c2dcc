"""Per-key rate limits and a bound on answers generated at once: refuse early, never pile up."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from core.errors import Busy, RateLimited


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


class AnswerGate:
    """At most ``slots`` answers in progress; the next caller is told to come back."""

    def __init__(self, slots: int) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self.size = slots

    def take(self) -> None:
        if not self._slots.acquire(blocking=False):
            raise Busy(f"all {self.size} answer slots are busy; retry shortly", retry_after_s=1.0)

    def give_back(self) -> None:
        self._slots.release()

    @contextmanager
    def slot(self) -> Iterator[None]:
        self.take()
        try:
            yield
        finally:
            self.give_back()
