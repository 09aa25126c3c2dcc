"""Checkpoints of the audit chain, signed, appended by themselves to a file outside the database.

A seal proves who wrote a record, not that no record was taken away: deleting the last
records and winding the head back leaves a shorter chain whose seals all hold. A line of
this file names a record (seq and hash) that must still be there; written every so many
records or seconds by whichever process appended, it finds a cut-off tail or a rewritten
chain with no checkpoint kept by hand. The file is only ever appended to, so it can live
on append-only storage.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.audit_seal import CHECKPOINT_KIND, KeyRing, SealKey, checkpoint_message, open_key

_TAIL = 8192  # bytes read from the end of the file to find its last line


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class CheckpointLine:
    number: int  # from 1
    data: dict[str, Any] | None  # None: not a JSON object (a torn or foreign line)


class CheckpointFile:
    """Signed checkpoints, one JSON line each, appended (never rewritten) outside the database.

    Every process that appends records writes them when due; a lock on the file makes
    one of them write, and the others skip rather than wait.
    """

    def __init__(self, path: Path, key: SealKey, every_records: int, every_s: float) -> None:
        self.path, self.key = path, key
        self.every_records, self.every_s = every_records, every_s
        # The newest (seq, time) this process has seen in the file: never newer than the
        # file, so "not due" by it is "not due" by the file, with no read and no lock.
        self._seen: tuple[int, float] | None = None
        self._looked = False

    def due(self, seq: int) -> bool:
        if not self._looked:
            self._seen, self._looked = self._last_in(self.path), True
        return self._why(self._seen, seq, time.time()) is not None

    def write(self, append_record: Callable[[str], tuple[int, str]], seq: int | None = None
              ) -> dict[str, Any] | None:
        """Append a checkpoint record through ``append_record`` (given why), then a signed
        line naming that very record, so that the checkpoint covers itself.

        ``seq`` None: a checkpoint asked for, written whatever the file says. Otherwise one
        due after record ``seq``; None is returned when another process is writing one
        now, or already wrote one that makes this one not due.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if seq is None else fcntl.LOCK_NB))
            except BlockingIOError:
                return None
            last, torn = _last_line(fd)
            why = "asked" if seq is None else self._why(last, seq, time.time())
            if why is None:
                self._seen = last
                return None
            covered_seq, digest = append_record(why)
            now = time.time()
            line = {"kind": CHECKPOINT_KIND, "seq": covered_seq, "hash": digest, "at": _iso(now),
                    "key_id": self.key.key_id}
            line["signature"] = self.key.sign(checkpoint_message(line))
            # A line torn by a crash stays a line of its own (verify names it), not a prefix.
            data = ("\n" if torn else "") + json.dumps(line) + "\n"
            _write_all(fd, data.encode("utf-8"))
            os.fsync(fd)
            self._seen, self._looked = (covered_seq, now), True
            return line
        finally:
            os.close(fd)  # releases the lock

    def read(self) -> list[CheckpointLine] | None:
        """Every line, for verify; None when there is no file."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None
        lines = []
        for number, raw in enumerate(text.splitlines(), 1):
            if raw.strip():
                lines.append(CheckpointLine(number, _json_object(raw)))
        return lines

    def _why(self, last: tuple[int, float] | None, seq: int, now: float) -> str | None:
        if last is None:
            return "first"
        if seq - last[0] >= self.every_records:
            return "records"
        if now - last[1] >= self.every_s:
            return "time"
        return None

    @staticmethod
    def _last_in(path: Path) -> tuple[int, float] | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            return _last_line(fd)[0]
        finally:
            os.close(fd)


def _last_line(fd: int) -> tuple[tuple[int, float] | None, bool]:
    """The seq and time of the file's last checkpoint line, and whether the file ends torn."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None, False
    start = max(0, size - _TAIL)
    tail = os.pread(fd, size - start, start)
    torn = not tail.endswith(b"\n")
    for raw in reversed(tail.decode("utf-8", errors="replace").splitlines()):
        data = _json_object(raw)
        try:
            if data is not None and data.get("kind") == CHECKPOINT_KIND:
                at = datetime.fromisoformat(str(data["at"]).replace("Z", "+00:00"))
                return (int(data["seq"]), at.timestamp()), torn
        except (KeyError, TypeError, ValueError):
            continue
    return None, torn


def _json_object(raw: str) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@dataclass(frozen=True, slots=True)
class Sealing:
    """What the audit log needs to seal: the key that signs, the keys that verify, the file."""

    key: SealKey
    keys: KeyRing
    checkpoints: CheckpointFile


def open_sealing(key_file: Path, create_key: bool, public_keys_file: Path | None,
                 checkpoint_file: Path, every_records: int, every_s: float) -> Sealing:
    key = open_key(key_file, create_key)
    return Sealing(key, KeyRing.of(key, public_keys_file),
                   CheckpointFile(checkpoint_file, key, every_records, every_s))
