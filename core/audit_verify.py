"""Verifying the audit trail: numbering, links, hashes, seals, checkpoints and kept texts.

The walk goes on after a problem, trusting the stored hash, so one altered record is one
problem; problems come out sorted by the record they name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import func, select

from core import audit_texts as kept
from core.audit import GENESIS, AuditHeadRow, AuditLog, AuditRow, Record, record_hash
from core.audit_checkpoints import CheckpointLine
from core.audit_seal import CHECKPOINT_KIND, KeyRing, checkpoint_message
from core.errors import InputError

TextKey = tuple[str, str]  # (chunk_id, text_sha256)
_TEXT_BATCH = 500  # records whose kept texts are looked up at once


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    record_id: str | None
    reason: str


@dataclass(slots=True)
class Verification:
    records: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    sealed: int = 0  # records whose seal was checked and holds
    checkpoints: int = 0  # lines of the checkpoint file that hold
    texts: int = 0  # kept texts referred to and checked
    problems: list[Problem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None


@dataclass(frozen=True, slots=True)
class KeptTexts:
    """What verify asks of the text store."""

    altered: Mapping[TextKey, str]  # kept texts that no longer hash to their key: their chunk
    present: Callable[[set[TextKey]], set[TextKey]]  # which of these keys are kept at all


@dataclass(frozen=True, slots=True)
class CheckpointFileLines:
    path: str
    lines: Sequence[CheckpointLine] | None  # None: no file


def text_keys(record: Record) -> list[TextKey]:
    """The kept texts a record refers to: its retrieved passages' chunk ids and text hashes."""
    retrieved = record.body.get("retrieved")
    keys = []
    for p in retrieved if isinstance(retrieved, list) else ():
        if isinstance(p, dict) and isinstance(p.get("chunk_id"), str) \
                and isinstance(p.get("text_sha256"), str):
            keys.append((p["chunk_id"], p["text_sha256"]))
    return keys


class ChainWalk:
    """One pass over the records, oldest first; ``finish`` adds what only the end can tell."""

    def __init__(self, checkpoint: Mapping[str, Any] | None = None, keys: KeyRing | None = None,
                 checkpoint_file: CheckpointFileLines | None = None,
                 texts: KeptTexts | None = None) -> None:
        self.result = Verification()
        self.keys, self.texts = keys, texts
        self._expected_seq, self._prev_hash = 1, GENESIS
        self._prev_id: str | None = None
        self._first_sealed: int | None = None
        self._pending: list[Record] = []
        self._reported: set[TextKey] = set()
        # seq -> (where it comes from, the hash it must have)
        self._wanted: dict[int, list[tuple[str, str]]] = {}
        if checkpoint is not None:
            self._want_checkpoint(checkpoint)
        # Records from the first checkpoint of the file on were written by sealing processes.
        self._must_seal_from: int | None = None
        self._file = checkpoint_file
        if checkpoint_file is not None:
            self._read_file(checkpoint_file)

    # -- the records ------------------------------------------------------------------------------

    def add(self, record: Record) -> None:
        result = self.result
        result.records += 1
        if record.seq != self._expected_seq:
            missing = (f"record {self._expected_seq} is" if record.seq == self._expected_seq + 1
                       else f"records {self._expected_seq} to {record.seq - 1} are")
            self._problem(record.seq, record.record_id,
                          f"{missing} missing: the chain has a gap before {record.seq}")
        elif record.prev_hash != self._prev_hash:
            self._problem(record.seq - 1, self._prev_id,
                          f"record {record.seq - 1} does not have the hash record {record.seq} "
                          "links to: it was replaced")
        if record_hash(record.fields()) != record.hash:
            self._problem(record.seq, record.record_id,
                          f"record {record.seq} was altered: its content does not match its hash")
        if self.keys is not None:
            self._check_seal(record)
        for source, digest in self._wanted.pop(record.seq, ()):
            if record.hash != digest:
                self._problem(record.seq, record.record_id,
                              f"record {record.seq} does not match {source}: the chain was "
                              "rewritten")
            elif source.startswith("checkpoint file"):
                result.checkpoints += 1
        if self.texts is not None:
            self._pending.append(record)
            if len(self._pending) >= _TEXT_BATCH:
                self._check_texts()
        self._expected_seq, self._prev_hash, self._prev_id = (record.seq + 1, record.hash,
                                                              record.record_id)
        result.head_seq, result.head_hash = record.seq, record.hash

    def finish(self, head: tuple[int, str] | None) -> Verification:
        result = self.result
        if self.texts is not None:
            self._check_texts()
            for key, chunk in self.texts.altered.items():
                if key not in self._reported:
                    self._problem(0, None, f"the kept text of chunk {chunk} (sha256 {key[1][:12]}…) "
                                  "was altered: it no longer matches its hash")
        if head is not None and head[0] != result.head_seq:
            self._problem(
                result.head_seq + 1, None,
                f"the chain ends at record {result.head_seq} but its head says {head[0]}: "
                "records at the end were removed" if head[0] > result.head_seq
                else f"the head says {head[0]} but records run to {result.head_seq}")
        elif head is not None and head[1] != result.head_hash:
            self._problem(result.head_seq, self._prev_id,
                          f"record {result.head_seq} does not match the chain's head")
        for seq, sources in self._wanted.items():
            for source, _ in sources:
                self._problem(seq, None, (
                    f"{source} names record {seq}, past the end of the chain "
                    f"({result.head_seq}): records were removed" if seq > result.head_seq
                    else f"{source} names record {seq}, which is missing"))
        if self._file is not None and self._file.lines is None and self._first_sealed is not None:
            self._problem(self._first_sealed, None,
                          f"the checkpoint file {self._file.path} is missing, yet records from "
                          f"{self._first_sealed} on are sealed: it was removed")
        result.problems.sort(key=lambda p: p.seq)
        return result

    def _problem(self, seq: int, record_id: str | None, reason: str) -> None:
        self.result.problems.append(Problem(seq, record_id, reason))

    def _check_seal(self, record: Record) -> None:
        assert self.keys is not None
        if record.seal is None:
            start = min((s for s in (self._first_sealed, self._must_seal_from) if s is not None),
                        default=None)
            if start is not None and record.seq >= start:
                self._problem(record.seq, record.record_id,
                              f"record {record.seq} is not sealed, though the records from "
                              f"{start} on are: its seal was removed")
            return
        if self._first_sealed is None:
            self._first_sealed = record.seq
        why = self.keys.check_seal(record.seal, record.seq, record.hash)
        if why is None:
            self.result.sealed += 1
        else:
            self._problem(record.seq, record.record_id,
                          f"record {record.seq}'s seal does not hold ({why}): the record or its "
                          "hash was rewritten")

    def _check_texts(self) -> None:
        assert self.texts is not None
        batch, self._pending = self._pending, []
        wanted = {key for record in batch for key in text_keys(record)} - self._reported
        if not wanted:
            return
        present = self.texts.present(wanted)
        for record in batch:
            for key in text_keys(record):
                if key in self._reported:
                    continue
                if key not in present:
                    why = "is missing from the audit's text store"
                elif key in self.texts.altered:
                    why = "was altered: it no longer matches its hash"
                else:
                    self._reported.add(key)  # checked: each text once
                    self.result.texts += 1
                    continue
                self._reported.add(key)
                self._problem(record.seq, record.record_id,
                              f"the kept text of chunk {key[0]} (sha256 {key[1][:12]}…) that "
                              f"record {record.seq} retrieved {why}")

    # -- checkpoints ------------------------------------------------------------------------------

    def _want_checkpoint(self, checkpoint: Mapping[str, Any]) -> None:
        try:
            seq, digest = int(checkpoint["seq"]), str(checkpoint["hash"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError("a checkpoint is a JSON object with seq and hash") from exc
        if "signature" in checkpoint and self.keys is not None:
            why = self._signature(checkpoint)
            if why is not None:
                self._problem(seq, None, f"the checkpoint's signature does not hold ({why})")
        self._wanted.setdefault(seq, []).append(("the checkpoint", digest))

    def _read_file(self, file: CheckpointFileLines) -> None:
        for line in file.lines or ():
            where = f"checkpoint file line {line.number}"
            data = line.data
            try:
                if data is None or data.get("kind") != CHECKPOINT_KIND:
                    raise ValueError
                seq, digest = int(data["seq"]), str(data["hash"])
            except (KeyError, TypeError, ValueError):
                self._problem(0, None, f"{where} is not a checkpoint: the file was edited")
                continue
            why = self._signature(data) if self.keys is not None else None
            if why is not None:
                self._problem(seq, None, f"{where} (record {seq}): its signature does not hold "
                              f"({why}): the file was edited")
                continue
            self._wanted.setdefault(seq, []).append((where, digest))
            self._must_seal_from = min(seq, self._must_seal_from or seq)

    def _signature(self, data: Mapping[str, Any]) -> str | None:
        assert self.keys is not None
        try:
            return self.keys.check(str(data["key_id"]), str(data["signature"]),
                                   checkpoint_message(data))
        except (KeyError, TypeError, ValueError):
            return "it is not signed"


def verify_chain(records: Iterable[Record], head: tuple[int, str] | None = None,
                 checkpoint: Mapping[str, Any] | None = None, keys: KeyRing | None = None,
                 checkpoint_file: CheckpointFileLines | None = None,
                 texts: KeptTexts | None = None) -> Verification:
    """Check numbering, links and content hashes, oldest first, and what else is given.

    A record whose content no longer matches its hash is named; so is a gap in the
    numbering (records removed), a record whose stored hash was replaced (the next record
    still links to the old one), and a tail cut off behind the head's back. With ``keys``,
    every seal; with the checkpoint file, every line of it; with ``texts``, every kept
    text a record refers to.
    """
    walk = ChainWalk(checkpoint, keys, checkpoint_file, texts)
    for record in records:
        walk.add(record)
    return walk.finish(head)


def verify_log(log: AuditLog, checkpoint: Mapping[str, Any] | None = None) -> Verification:
    """The database's chain, with everything there is to check it against."""
    s = log.sealing
    # The file before the head, the head before the walk, and the walk no further than the
    # head: records appended meanwhile are neither seen nor missed.
    lines = CheckpointFileLines(str(s.checkpoints.path), s.checkpoints.read()) if s else None
    head = log.head()
    walk = ChainWalk(checkpoint, s.keys if s else None, lines,
                     KeptTexts(kept.altered(log.db), partial(kept.present, log.db)))
    for record in log.scan(until=head[0]):
        walk.add(record)
    result = walk.finish(head)
    head_seq, last = _head_and_last(log)
    if last > head_seq:  # a head wound back over records still there
        result.problems.append(Problem(head_seq + 1, None,
                                       f"the head says {head_seq} but records run to {last}"))
        result.problems.sort(key=lambda p: p.seq)
    return result


def _head_and_last(log: AuditLog) -> tuple[int, int]:
    """The head's seq and the last record's, read at one moment."""
    with log.db.session() as s:
        last = select(func.coalesce(func.max(AuditRow.seq), 0)).scalar_subquery()
        row = s.execute(select(AuditHeadRow.seq, last).where(AuditHeadRow.id == 1)).first()
        return (int(row[0]), int(row[1])) if row else (0, 0)
