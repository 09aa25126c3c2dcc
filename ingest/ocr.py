"""Tesseract, run locally: one process per page, its words and their mean confidence.

Tesseract is Debian's ``tesseract-ocr`` binary, called directly (no Python wrapper): the
page goes in on stdin as an uncompressed greyscale image, nothing touches the disk, and
its TSV output gives every word with its confidence. Pages are read by several processes
at once, each single-threaded (Tesseract's own threads cost more than they give on a few
cores). A page past its time limit has its process killed and is left unread; whatever
stops the reading (Celery's soft time limit, Ctrl+C, an error) kills every process still
running before it propagates, and a worker killed outright leaves none behind for longer
than the page limit (each runs under ``timeout``).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

from core.errors import CorruptDocument, DocumentError, TooLarge, UnsupportedType, one_line
from core.settings import OcrSettings
from ingest.denoise import despeckle
from ingest.leaders import Word, letter_height, needs_look, restore_line
from ingest.overlap import on_abandon

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from PIL.Image import Image

# Tesseract's TSV: level 5 rows are words; blocks hold paragraphs, which hold lines.
_WORD_LEVEL = "5"
# Beyond the page limit, how long an orphaned process may live (its parent killed outright).
_ORPHAN_GRACE_S = 5


@dataclass(frozen=True, slots=True)
class PageImage:
    """One page to read: its number, and its picture or why there is none."""

    page: int
    image: Image | None
    dpi: int | None = None  # None: Tesseract estimates it from the text's size
    error: DocumentError | None = None


@dataclass(frozen=True, slots=True)
class PageText:
    """What OCR read on one page: its paragraphs, its words' mean confidence (0-100;
    None without words), or why it could not read it."""

    page: int
    paragraphs: tuple[str, ...]
    confidence: float | None
    words: int
    error: DocumentError | None = None


class Tesseract:
    """Reads page images with the ``tesseract`` binary, under the OCR settings."""

    def __init__(self, settings: OcrSettings, binary: str | None = None) -> None:
        self.settings = settings
        self.binary = binary or shutil.which("tesseract")
        self.workers = settings.workers or max(1, min(4, os.cpu_count() or 1))

    def check(self) -> None:
        """Refuse up front, with what to install, when Tesseract or a language is missing."""
        if not self.binary:
            raise UnsupportedType("OCR needs Tesseract, which is not installed "
                                  "(Debian: apt-get install tesseract-ocr tesseract-ocr-eng)")
        missing = [lang for lang in self.settings.languages.split("+")
                   if lang not in _installed_languages(self.binary)]
        if missing:
            raise UnsupportedType(
                f"OCR language data not installed: {', '.join(missing)} (Debian: apt-get "
                f"install {' '.join('tesseract-ocr-' + m.lower() for m in missing)})")

    def read(self, pages: Iterable[PageImage]) -> Generator[PageText, None, None]:
        """Each page's text, in the order given; at most ``workers`` processes at once.

        Close the iterator (or let it run out) to stop: the processes still running are
        killed then, and when an exception (a time limit) interrupts the wait.
        """
        self.check()
        run = _Run()
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ocr")
        pending: deque[tuple[PageImage, Future[PageText]]] = deque()
        # Parsing runs in a thread of its own (ingest/overlap.py): a time limit interrupts
        # the thread waiting for it, which then stops these processes from there.
        try:
            with on_abandon(run.stop):
                for page in pages:
                    if page.image is None:
                        pending.append((page, _done(_failed(page))))
                    else:
                        picture = despeckle(page.image)
                        page = replace(page, image=picture)
                        # Encoded here, so only the bytes wait in the queue, not the picture.
                        data = _pnm(picture)
                        pending.append((page, pool.submit(self._page, run, page, data)))
                    while len(pending) > self.workers:
                        yield pending.popleft()[1].result()
                while pending:
                    yield pending.popleft()[1].result()
        finally:
            run.stop()
            pool.shutdown(wait=True, cancel_futures=True)

    def _page(self, run: _Run, page: PageImage, data: bytes) -> PageText:
        limit = self.settings.page_timeout_s
        # Inverted (light on dark) text is not looked for: a third of the time per page, and
        # scans of paper have none.
        command = [self.binary or "tesseract", "stdin", "stdout", "-l", self.settings.languages,
                   "--psm", "3", "-c", "tessedit_do_invert=0"]
        if page.dpi:
            command += ["--dpi", str(page.dpi)]
        command.append("tsv")
        proc = run.start(_bounded(command, limit))
        if proc is None:  # stopped before it began
            return PageText(page.page, (), None, 0, TooLarge(f"page {page.page}: not read"))
        try:
            out, err = proc.communicate(data, timeout=limit)
        except subprocess.TimeoutExpired:
            _kill(proc)
            proc.communicate()
            return PageText(page.page, (), None, 0, TooLarge(
                f"page {page.page}: OCR took longer than the {limit:g} s page limit "
                f"(ENCLAVE_OCR__PAGE_TIMEOUT_S)"))
        finally:
            run.forget(proc)
        if proc.returncode != 0:
            why = _last_line(err) or f"exit status {proc.returncode}"
            if run.stopped:
                why = "stopped"
            return PageText(page.page, (), None, 0,
                            CorruptDocument(f"page {page.page}: OCR failed: {why}"))
        return parse_tsv(page.page, out.decode("utf-8", "replace"), page.image)


class _Run:
    """The processes of one reading, so that stopping it kills every one still running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen[bytes]] = set()
        self.stopped = False

    def start(self, command: list[str]) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self.stopped:
                return None
            # A session of its own: killing its group takes `timeout` and Tesseract together.
            proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=_environment(),
                                    start_new_session=True)
            self._live.add(proc)
            return proc

    def forget(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._live.discard(proc)

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            live = list(self._live)
        for proc in live:
            _kill(proc)


def parse_tsv(page: int, tsv: str, image: Image | None = None) -> PageText:
    """Tesseract's TSV as paragraphs of lines, and the mean confidence of its words. With
    the page's ``image``, dot leaders are read from its pixels (ingest/leaders.py)."""
    lines: dict[tuple[str, str, str], list[Word]] = {}
    for row in tsv.splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) < 12 or cells[0] != _WORD_LEVEL:
            continue
        text = cells[11].strip()
        try:
            box = [int(c) for c in cells[6:10]]
            confidence = float(cells[10])
        except ValueError:
            continue
        if not text or confidence < 0:
            continue
        lines.setdefault((cells[2], cells[3], cells[4]), []).append(
            Word(box[0], box[1], box[2], box[3], confidence, text))
    words = [w for line in lines.values() for w in line]
    height = letter_height(words)
    ink = None
    paragraphs: dict[tuple[str, str], list[str]] = {}
    for (block, par, _), line in lines.items():
        texts = [w.text for w in line]
        if image is not None and height and any(needs_look(w, height) for w in line):
            if ink is None:
                ink = _ink(image)
            texts = restore_line(line, ink, height)
        paragraphs.setdefault((block, par), []).append(" ".join(texts))
    confidences = [w.confidence for w in words]
    mean = round(sum(confidences) / len(confidences), 1) if confidences else None
    return PageText(page, tuple("\n".join(p) for p in paragraphs.values()), mean,
                    len(confidences))


def _ink(image: Image) -> NDArray[np.bool_]:
    import numpy as np

    return np.asarray(image if image.mode == "L" else image.convert("L")) < 128


def _failed(page: PageImage) -> PageText:
    error = page.error or CorruptDocument(f"page {page.page}: no image")
    return PageText(page.page, (), None, 0, error)


def _done(result: PageText) -> Future[PageText]:
    future: Future[PageText] = Future()
    future.set_result(result)
    return future


def _pnm(image: Image) -> bytes:
    """The picture as greyscale PGM: uncompressed, so encoding it costs next to nothing."""
    buffer = io.BytesIO()
    (image if image.mode == "L" else image.convert("L")).save(buffer, "PPM")
    return buffer.getvalue()


def _bounded(command: list[str], limit_s: float) -> list[str]:
    """``command`` under coreutils' ``timeout``: should this process die (a worker killed
    at its hard time limit), the page's Tesseract still ends soon after the page limit."""
    killer = shutil.which("timeout")
    if killer is None:
        return command
    return [killer, "-s", "KILL", str(int(limit_s) + _ORPHAN_GRACE_S), *command]


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # gone already


def _environment() -> dict[str, str]:
    # One thread per process: pages run side by side instead, which is faster on few cores.
    return {**os.environ, "OMP_THREAD_LIMIT": "1"}


def _last_line(err: bytes) -> str:
    lines = [line.strip() for line in err.decode("utf-8", "replace").splitlines() if line.strip()]
    return one_line(RuntimeError(lines[-1])) if lines else ""


@lru_cache(maxsize=4)
def _installed_languages(binary: str) -> frozenset[str]:
    try:
        done = subprocess.run([binary, "--list-langs"], capture_output=True, text=True,
                              timeout=30, env=_environment())
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UnsupportedType(f"OCR: Tesseract does not run: {one_line(exc)}") from exc
    # The first line is a heading ("List of available languages in ...").
    return frozenset(line.strip() for line in done.stdout.splitlines()[1:] if line.strip())
