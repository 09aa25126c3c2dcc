"""Sealed audit chains on real databases, attacked the way an intruder with the database would.

The intruder has full access to the database (SQL, and core.audit.record_hash to recompute
hashes) but not to the seal key or the checkpoint file, which live outside it. No test
keeps a checkpoint by hand: what catches the intruder is what enclave writes by itself.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from core.audit import GENESIS, HASHED, AuditLog, Event, Filters, Passage, record_hash
from core.container import Container
from core.db import Database
from core.settings import Settings


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    return str(request.getfixturevalue("pg_url"))


def _container(tmp_path: Path, db_url: str, **audit: Any) -> Container:
    """As deployed: the container builds the sealed log from settings."""
    return Container(Settings(data_dir=tmp_path / "data", database_url=db_url, audit=audit))


@pytest.fixture
def audit(tmp_path: Path, db_url: str) -> Iterator[AuditLog]:
    c = _container(tmp_path, db_url, checkpoint_every_records=3)
    yield c.audit
    c.close()


def _answer(i: int, *passages: Passage) -> Event:
    return Event("answer", "ann", {"question": f"question {i}", "retrieved": [
        {"rank": r, "chunk_id": p.chunk_id, "text_sha256": _sha(p.text)}
        for r, p in enumerate(passages, 1)]},
        question=f"question {i}", answer=f"answer {i} [1].", refused=False, passages=passages)


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _sql(log: AuditLog, statement: str, **params: object) -> None:
    with log.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def _rewrite_chain(log: AuditLog, seq: int, question: str, nullify_seals: bool = False) -> None:
    """Change record ``seq``'s question, then recompute its hash, every later record's link
    and hash, and the head: a chain that links and hashes perfectly."""
    with log.db.engine.begin() as conn:
        prev = conn.execute(text("SELECT hash FROM audit_records WHERE seq = :s"),
                            {"s": seq - 1}).scalar() or GENESIS
        rows = conn.execute(text("SELECT * FROM audit_records WHERE seq >= :s ORDER BY seq"),
                            {"s": seq}).mappings().all()
        for row in rows:
            fields = {k: row[k] for k in HASHED}
            fields["body"] = json.loads(row["body"])
            fields["refused"] = None if row["refused"] is None else bool(row["refused"])
            if row["seq"] == seq:
                fields["question"] = question
            fields["prev_hash"] = prev
            prev = record_hash(fields)
            conn.execute(text("UPDATE audit_records SET question = :q, prev_hash = :p, hash = :h"
                              + (", seal = NULL" if nullify_seals else "") + " WHERE seq = :s"),
                         {"q": fields["question"], "p": fields["prev_hash"], "h": prev,
                          "s": row["seq"]})
        conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h"),
                     {"s": rows[-1]["seq"], "h": prev})


def _checkpoint_lines(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "data" / "audit" / "checkpoints.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_altered_kept_text_is_named(db_url: str) -> None:
    db = Database(db_url)
    log = AuditLog(db)  # not sealed: the kept texts are checked all the same
    try:
        leave = Passage("c1", "d1", "v1", "/docs/handbook.md", "Employees get 28 days of leave.")
        log.append(_answer(1))
        first = log.append(_answer(2, leave))
        log.append(_answer(3, leave))
        assert log.verify().intact
        _sql(log, "UPDATE audit_texts SET text = 'Employees get 90 days of leave.' "
                  "WHERE chunk_id = 'c1'")
        result = log.verify()
        assert not result.intact
        assert result.first is not None
        assert (result.first.seq, result.first.record_id) == (2, first.record_id)
        assert "kept text of chunk c1" in result.first.reason and "altered" in result.first.reason
        assert len(result.problems) == 1  # one text, named once, by the first record citing it
        stored = log.texts([("c1", _sha(leave.text))])[("c1", _sha(leave.text))]
        assert stored.intact is False

        _sql(log, "DELETE FROM audit_texts WHERE chunk_id = 'c1'")
        first_problem = log.verify().first
        assert first_problem is not None and first_problem.seq == 2
        assert "missing from the audit's text store" in first_problem.reason
    finally:
        db.close()


def test_a_purged_text_is_not_an_altered_one(audit: AuditLog) -> None:
    audit.append(_answer(1, Passage("c1", "d1", "v1", "/a.md", "A passage.")))
    assert audit.purge_document("d1", "erasure 1") == 1
    result = audit.verify()
    assert result.intact, result.problems


def test_attack_a_recomputed_chain_is_caught_by_the_seals_and_the_checkpoints(
    tmp_path: Path, audit: AuditLog
) -> None:
    records = [audit.append(_answer(i)) for i in range(1, 9)]
    assert audit.verify().intact
    _rewrite_chain(audit, records[1].seq, "What is the CEO's salary?")
    result = audit.verify()
    assert not result.intact
    assert result.first is not None and result.first.seq == records[1].seq
    assert result.first.record_id == records[1].record_id
    assert "seal does not hold" in result.first.reason
    sealed = [p for p in result.problems if "seal does not hold" in p.reason]
    assert [p.seq for p in sealed] == list(range(records[1].seq, audit.head()[0] + 1))
    assert any("does not match checkpoint file line" in p.reason for p in result.problems)

    # Without its seals (set to NULL: "never sealed"), the chain is still caught: by the
    # checkpoint file, and by unsealed records where sealed ones must be.
    _rewrite_chain(audit, records[1].seq, "What is the CFO's salary?", nullify_seals=True)
    result = audit.verify()
    reasons = [p.reason for p in result.problems]
    assert any("does not match checkpoint file line" in r and "rewritten" in r for r in reasons)
    assert any("is not sealed" in r for r in reasons)


def test_attack_a_cut_off_tail_with_a_rewound_head_is_caught_by_the_checkpoints(
    tmp_path: Path, audit: AuditLog
) -> None:
    for i in range(1, 9):
        audit.append(_answer(i))
    head_seq, _ = audit.head()
    assert audit.verify().intact
    keep = head_seq - 3
    last = audit.records(Filters(), 1, before=keep + 1)[0]
    _sql(audit, "DELETE FROM audit_records WHERE seq > :s", s=keep)
    _sql(audit, "UPDATE audit_head SET seq = :s, hash = :h", s=last.seq, h=last.hash)
    result = audit.verify()
    assert not result.intact, "a cut-off tail with its head wound back went unnoticed"
    assert result.first is not None
    assert "past the end of the chain" in result.first.reason
    assert "records were removed" in result.first.reason
    assert result.first.seq > keep
    # Every remaining record is intact and sealed: only the file knew there were more.
    assert all("past the end" in p.reason for p in result.problems)


def test_a_checkpoint_covers_its_own_record(tmp_path: Path, audit: AuditLog) -> None:
    audit.append(_answer(1))
    line = audit.checkpoint("audrey", "cli")
    own = audit.get(audit.records(Filters(kind="audit.checkpoint"), 1)[0].record_id)
    assert (line["seq"], line["hash"]) == (own.seq, own.hash) == audit.head()
    assert own.actor == "audrey" and own.body == {"channel": "cli"}
    assert _checkpoint_lines(tmp_path)[-1] == line
    assert audit.verify(line).intact
    # The first append of a sealed chain wrote a checkpoint by itself, also naming its record.
    first = _checkpoint_lines(tmp_path)[0]
    auto = next(r for r in audit.scan() if r.seq == first["seq"])
    assert auto.kind == "audit.checkpoint" and auto.body == {"channel": "auto", "due": "first"}
    assert auto.hash == first["hash"]


def test_an_edited_or_missing_checkpoint_file_is_a_problem(tmp_path: Path,
                                                           audit: AuditLog) -> None:
    for i in range(1, 5):
        audit.append(_answer(i))
    path = tmp_path / "data" / "audit" / "checkpoints.jsonl"
    lines = path.read_text().splitlines()
    forged = json.loads(lines[-1])
    forged["seq"] += 1
    path.write_text("\n".join([*lines, json.dumps(forged)]) + "\n")
    first = audit.verify().first
    assert first is not None and "signature does not hold" in first.reason
    path.unlink()
    first = audit.verify().first
    assert first is not None and "checkpoint file" in first.reason and "missing" in first.reason


def test_concurrent_appenders_write_whole_lines_and_no_duplicates(tmp_path: Path,
                                                                  db_url: str) -> None:
    _container(tmp_path, db_url).close()  # migrate once, up front
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        pool.starmap(_append_many, [(str(tmp_path), db_url, 12) for _ in range(4)])
    c = _container(tmp_path, db_url, checkpoint_every_records=2)
    try:
        result = c.audit.verify()
        assert result.intact, result.problems
        lines = _checkpoint_lines(tmp_path)  # every line parses: none torn
        seqs = [line["seq"] for line in lines]
        assert seqs == sorted(set(seqs)), "a checkpoint was written twice or out of order"
        # A process that finds another writing a checkpoint skips rather than waits
        # (CheckpointFile), so how many get written depends on timing: at least the first
        # and one due by records.
        assert result.checkpoints == len(lines) >= 2
        kinds = {r.seq: r.kind for r in c.audit.scan()}
        assert {kinds[s] for s in seqs} == {"audit.checkpoint"}
        assert result.sealed == result.records == 48 + len(lines)
    finally:
        c.close()


def _append_many(root: str, db_url: str, n: int) -> None:
    c = _container(Path(root), db_url, checkpoint_every_records=2)
    for i in range(n):
        c.audit.append(_answer(i))
    c.close()


def test_records_sealed_by_a_rotated_key_verify_with_its_public_key(tmp_path: Path,
                                                                    db_url: str) -> None:
    from core.audit_seal import KeyRing, load_key, write_key

    old_file = tmp_path / "keys" / "2026-q1.key"
    old_file.parent.mkdir()
    old = write_key(old_file, "2026-q1")
    assert old_file.stat().st_mode & 0o777 == 0o600
    c = _container(tmp_path, db_url, seal_key_file=str(old_file))
    sealed = [c.audit.append(_answer(i)) for i in range(1, 4)]
    c.close()
    assert {r.seal.split(":")[0] for r in sealed if r.seal} == {"2026-q1"}
    assert all(KeyRing({"2026-q1": old.public}).check_seal(r.seal or "", r.seq, r.hash) is None
               for r in sealed)

    new_file = tmp_path / "keys" / "2026-q2.key"
    write_key(new_file, "2026-q2")
    c = _container(tmp_path, db_url, seal_key_file=str(new_file))
    c.audit.append(_answer(4))
    first = c.audit.verify().first
    c.close()
    assert first is not None and "unknown key '2026-q1'" in first.reason

    public = tmp_path / "keys" / "public.jsonl"
    public.write_text(json.dumps(old.public_line()) + "\n")
    c = _container(tmp_path, db_url, seal_key_file=str(new_file),
                   seal_public_keys_file=str(public))
    try:
        result = c.audit.verify()
        assert result.intact, result.problems
        assert result.sealed == result.records
        assert {r.seal.split(":")[0] for r in c.audit.scan() if r.seal} == {"2026-q1", "2026-q2"}
    finally:
        c.close()
    with pytest.raises(FileExistsError):
        write_key(new_file, "2026-q3")  # a key file is never overwritten
    assert load_key(new_file).key_id == "2026-q2"


def test_an_unsealed_record_after_sealed_ones_is_a_problem(tmp_path: Path, db_url: str) -> None:
    c = _container(tmp_path, db_url)
    try:
        c.audit.append(_answer(1))
        intruder = AuditLog(c.database)  # a writer without the key
        unsealed = intruder.append(_answer(2))
        first = c.audit.verify().first
        assert first is not None and first.record_id == unsealed.record_id
        assert "is not sealed" in first.reason
    finally:
        c.close()


def test_a_jsonl_export_carries_the_seals_and_verifies_them(tmp_path: Path, audit: AuditLog) -> None:
    from core.audit_export import jsonl_line, record_from_json
    from core.audit_verify import verify_chain

    for i in range(1, 4):
        audit.append(_answer(i))
    assert audit.sealing is not None
    keys = audit.sealing.keys
    lines = [jsonl_line(r) for r in audit.scan()]
    assert all(json.loads(line)["seal"] for line in lines)
    assert verify_chain((record_from_json(line) for line in lines), keys=keys).intact
    # The seal is not hashed: an export rehashed after an edit still fails on its seal.
    data = json.loads(lines[1])
    data["actor"] = "mallory"
    data["hash"] = record_hash(data)
    lines[1] = json.dumps(data)
    result = verify_chain((record_from_json(line) for line in lines), keys=keys)
    assert result.first is not None and result.first.seq == data["seq"]
    assert any("seal does not hold" in p.reason for p in result.problems if p.seq == data["seq"])
