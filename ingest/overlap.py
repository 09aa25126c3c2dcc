"""Parse ahead: the next documents are parsed and chunked while the current one embeds.

Parsing is mostly Python (pdfminer, unstructured) and holds the GIL; embedding runs in
ONNX Runtime, which releases it while it computes. So a thread that prepares documents
ahead overlaps with the embedding of the current one, on two cores, without the cost and
the pickling of processes. Preparing stays in one thread: two parsers at once would only
contend for the GIL, and some parsers' libraries are not thread-safe.

A parser that hangs cannot be stopped from outside its thread. :func:`within` gives up on
it after its time limit, so that its document fails alone with that reason and the run
goes on; the abandoned thread is a daemon and ends with the process at the latest. It gives
up the same way when the waiting thread itself is interrupted (Celery's soft time limit,
which a signal raises there, or Ctrl+C). Work that outlives its thread's usefulness, the
OCR and LibreOffice processes, registers with :func:`on_abandon` and is killed then.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from core.errors import ParseFailed

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


class _Abandon:
    """What to stop should the waiting thread give up on the work (see on_abandon)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[Callable[[], None]] = []
        self.given_up = False

    def add(self, call: Callable[[], None]) -> bool:
        with self._lock:
            if not self.given_up:
                self._calls.append(call)
            return not self.given_up

    def remove(self, call: Callable[[], None]) -> None:
        with self._lock:
            if call in self._calls:
                self._calls.remove(call)

    def give_up(self) -> None:
        with self._lock:
            self.given_up = True
            calls, self._calls = self._calls, []
        for call in calls:
            try:
                call()
            except Exception:  # the others are still stopped
                log.warning("stopping abandoned parse work failed", exc_info=True)


_ABANDON: contextvars.ContextVar[_Abandon | None] = contextvars.ContextVar(
    "enclave_abandon", default=None)


@contextmanager
def on_abandon(stop: Callable[[], None]) -> Iterator[None]:
    """While in this block, ``stop()`` is called, from another thread, should the
    :func:`within` this thread works for give up on it. Called at once when it already has.
    Outside :func:`within` it does nothing: an interruption reaches this thread itself."""
    abandon = _ABANDON.get()
    if abandon is None:
        yield
        return
    if not abandon.add(stop):
        stop()
    try:
        yield
    finally:
        abandon.remove(stop)


def within(limit_s: float, fn: Callable[[], T]) -> T:
    """``fn()``, run in a thread of its own; :class:`ParseFailed` when it takes longer
    than ``limit_s``. Its exceptions are raised here, as if it had run here; so is one
    that interrupts the wait (a time limit's), unchanged. Either way the work registered
    with :func:`on_abandon` is stopped before this returns."""
    outcome: list[T] = []
    failure: list[BaseException] = []
    done = threading.Event()
    abandon = _Abandon()
    context = contextvars.copy_context()  # the request id of the log lines it writes

    def work() -> T:
        _ABANDON.set(abandon)
        return fn()

    def run() -> None:
        try:
            outcome.append(context.run(work))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="enclave-parse", daemon=True).start()
    try:
        finished = done.wait(limit_s)
    except BaseException:
        abandon.give_up()
        raise
    if not finished:
        abandon.give_up()
        raise ParseFailed(f"parsing took longer than {limit_s:g} s (ENCLAVE_INGEST__PARSE_TIMEOUT_S); "
                          "given up")
    if failure:
        raise failure[0]
    return outcome[0]


class _End:
    pass


class _Broken(Generic[T]):
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prepared_ahead(
    items: Iterable[T], prepare: Callable[[T], R], ahead: int
) -> Iterator[tuple[T, R]]:
    """``(item, prepare(item))`` in the order of ``items``, with up to ``ahead`` items
    prepared in a background thread before the consumer asks for them.

    ``prepare`` should turn its failures into results; one it raises reaches the consumer
    with its item's turn, and so does a failure of iterating ``items``. A consumer that
    stops early stops the thread after the item it is preparing.
    """
    if ahead <= 0:
        for item in items:
            yield item, prepare(item)
        return
    handed: queue.Queue[tuple[T, R | _Broken[T]] | _Broken[T] | _End] = queue.Queue(ahead)
    stop = threading.Event()
    context = contextvars.copy_context()

    def put(value: tuple[T, R | _Broken[T]] | _Broken[T] | _End) -> bool:
        while not stop.is_set():
            try:
                handed.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                try:
                    result: R | _Broken[T] = context.run(prepare, item)
                except BaseException as exc:  # noqa: BLE001 - raised in the consumer
                    result = _Broken(exc)
                if not put((item, result)):
                    return
        except BaseException as exc:  # noqa: BLE001 - discovery failed: raised in the consumer
            put(_Broken(exc))
        finally:
            put(_End())

    threading.Thread(target=produce, name="enclave-prepare", daemon=True).start()
    try:
        while not isinstance(got := handed.get(), _End):
            if isinstance(got, _Broken):
                raise got.error
            item, result = got
            if isinstance(result, _Broken):
                raise result.error
            yield item, result
    finally:
        stop.set()
