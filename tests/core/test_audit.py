"""The audit chain on real databases: SQLite and the PostgreSQL server on this machine.

Tampering is done the way an intruder would: SQL straight into the tables.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from core.audit import GENESIS, AuditLog, Event, Filters, Passage
from core.audit_export import csv_header, csv_line, jsonl_line, record_from_json
from core.audit_verify import verify_chain
from core.db import Database


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def log(db_url: str) -> Iterator[AuditLog]:
    db = Database(db_url)
    yield AuditLog(db)
    db.close()


def _answer(i: int, user: str = "ann", refused: bool = False, unsupported: int = 0,
            passages: tuple[Passage, ...] = ()) -> Event:
    return Event("answer", user, {"question": f"question {i}", "scores": [0.5, 1 / 3],
                                  "citations": [{"n": 1}]},
                 question=f"question {i} about leave", answer=f"answer {i} [1].",
                 refused=refused, unsupported=unsupported, passages=passages)


def _sql(log: AuditLog, statement: str, **params: object) -> None:
    with log.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_records_are_numbered_chained_and_verify(log: AuditLog) -> None:
    records = [log.append(_answer(i)) for i in range(1, 6)]
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    result = log.verify()
    assert result.intact and result.records == 5
    assert (result.head_seq, result.head_hash) == (5, records[-1].hash) == log.head()
    # Floats and nested JSON come back exactly as hashed.
    assert log.get(records[2].record_id).body["scores"] == [0.5, 1 / 3]


def test_an_altered_answer_is_named(log: AuditLog) -> None:
    records = [log.append(_answer(i)) for i in range(1, 6)]
    _sql(log, "UPDATE audit_records SET answer = 'something else' WHERE seq = 3")
    result = log.verify()
    assert not result.intact
    assert result.first is not None
    assert (result.first.seq, result.first.record_id) == (3, records[2].record_id)
    assert "altered" in result.first.reason
    assert len(result.problems) == 1  # the walk goes on: one altered record, one problem


def test_an_altered_filter_column_or_body_is_named_too(log: AuditLog) -> None:
    for i in range(1, 4):
        log.append(_answer(i))
    _sql(log, "UPDATE audit_records SET refused = :t WHERE seq = 1", t=True)
    _sql(log, "UPDATE audit_records SET body = :b WHERE seq = 2", b=json.dumps({"question": "x"}))
    assert [p.seq for p in log.verify().problems] == [1, 2]


def test_a_record_rehashed_after_changing_is_caught_by_the_next_link(log: AuditLog) -> None:
    for i in range(1, 5):
        log.append(_answer(i))
    _sql(log, "UPDATE audit_records SET hash = :h WHERE seq = 2", h="f" * 64)
    first = log.verify().first
    assert first is not None and first.seq == 2


def test_a_deleted_record_is_a_gap(log: AuditLog) -> None:
    for i in range(1, 6):
        log.append(_answer(i))
    _sql(log, "DELETE FROM audit_records WHERE seq = 3")
    first = log.verify().first
    assert first is not None and first.seq == 4
    assert "record 3 is missing" in first.reason


def test_a_cut_off_tail_is_found_by_the_head_and_by_a_checkpoint(log: AuditLog) -> None:
    for i in range(1, 6):
        log.append(_answer(i))
    seq, digest = log.head()
    checkpoint = {"seq": seq, "hash": digest}
    assert log.verify(checkpoint).intact
    _sql(log, "DELETE FROM audit_records WHERE seq >= 4")
    first = log.verify().first
    assert first is not None and "records at the end were removed" in first.reason
    # An intruder who also rewinds the head is still caught by the checkpoint kept elsewhere.
    row = log.get(log.records(Filters(), 1)[0].record_id)
    _sql(log, "UPDATE audit_head SET seq = :s, hash = :h", s=row.seq, h=row.hash)
    assert log.verify().intact
    first = log.verify(checkpoint).first
    assert first is not None and "past the end of the chain" in first.reason


def test_appends_from_many_processes_stay_one_chain(db_url: str) -> None:
    AuditLog(Database(db_url)).db.close()  # migrate once, up front
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        pool.starmap(_append_many, [(db_url, f"user{p}", 15) for p in range(4)])
    db = Database(db_url)
    try:
        log = AuditLog(db)
        result = log.verify()
        assert result.intact, result.problems
        assert result.records == 60 == log.count()
        scanned = list(log.scan())
        assert [r.seq for r in scanned] == list(range(1, 61))
        assert [r.at for r in scanned] == sorted(r.at for r in scanned)
    finally:
        db.close()


def _append_many(url: str, user: str, n: int) -> None:
    db = Database(url)
    log = AuditLog(db)
    for i in range(n):
        log.append(_answer(i, user))
    db.close()


def test_filters(log: AuditLog) -> None:
    log.append(_answer(1, "ann"))
    log.append(_answer(2, "bob", refused=True))
    log.append(_answer(3, "ann", unsupported=2))
    log.append(Event("job.submitted", "root", {"job_id": "j1"}))
    seqs = lambda f: [r.seq for r in log.records(f)]  # noqa: E731
    assert seqs(Filters()) == [4, 3, 2, 1]
    assert seqs(Filters(user="ann")) == [3, 1]
    assert seqs(Filters(refused=True)) == [2]
    assert seqs(Filters(refused=False)) == [3, 1]  # admin events are neither
    assert seqs(Filters(unsupported=True)) == [3]
    assert seqs(Filters(kind="job.submitted")) == [4]
    assert seqs(Filters(text="ANSWER 2")) == [2]
    assert seqs(Filters(text="100%_")) == []  # LIKE wildcards are literal
    at = log.get(log.records(Filters(user="bob"))[0].record_id).at
    assert seqs(Filters(since=at)) == [4, 3, 2]
    assert seqs(Filters(until=at)) == [1]
    assert [r.seq for r in log.records(Filters(), 2, before=3)] == [2, 1]


def test_kept_texts_outlive_the_index_until_retention_or_a_legal_purge(log: AuditLog) -> None:
    old = Passage("c1", "d1", "v1", "/docs/a.md", "The limit is 150 euros.")
    new = Passage("c2", "d1", "v2", "/docs/a.md", "The limit is 180 euros.")
    other = Passage("c3", "d2", "v1", "/docs/b.md", "Leave is 28 days.")
    log.append(_answer(1, passages=(old, other, old)))
    log.append(_answer(2, passages=(new,)))
    texts = log.texts([("c1", _sha(old.text)), ("c3", _sha(other.text))])
    assert texts[("c1", _sha(old.text))].text == old.text
    assert texts[("c1", _sha(old.text))].version == "v1"

    _sql(log, "UPDATE audit_texts SET last_at = '2000-01-01T00:00:00.000000Z' WHERE chunk_id = 'c3'")
    assert log.expire(365, "worker:w1", "worker") == 1
    assert log.expire(365, "worker:w1", "worker") == 0  # quiet: nothing purged, nothing recorded
    retention = log.records(Filters(kind="audit.retention"))
    assert [(r.actor, r.body["texts_purged"]) for r in retention] == [("worker:w1", 1)]
    purged = log.texts([("c3", _sha(other.text))])[("c3", _sha(other.text))]
    assert purged.text is None and purged.purge_reason == "retention"
    log.append(_answer(3, passages=(other,)))  # cited again: current again
    assert log.texts([("c3", _sha(other.text))])[("c3", _sha(other.text))].text == other.text

    assert log.purge_document("d1", "court order 12") == 2
    gone = log.texts([("c1", _sha(old.text)), ("c2", _sha(new.text))])
    assert {t.text for t in gone.values()} == {None}
    assert {t.purge_reason for t in gone.values()} == {"legal: court order 12"}
    log.append(_answer(4, passages=(new,)))  # a legal purge is not undone by a later record
    assert log.texts([("c2", _sha(new.text))])[("c2", _sha(new.text))].text is None
    assert log.source_of("d1") == "/docs/a.md"
    assert log.verify().intact  # texts live outside the chain


def test_exports_verify_offline_and_csv_is_safe_for_spreadsheets(log: AuditLog) -> None:
    log.append(Event("answer", "eve", {"x": 1}, question="=HYPERLINK(\"http://x\")",
                     answer="-1+2", refused=False))
    for i in range(2, 5):
        log.append(_answer(i))
    lines = [jsonl_line(r) for r in log.scan()]
    assert verify_chain(record_from_json(line) for line in lines).intact
    tampered = lines[:]
    data = json.loads(tampered[1])
    data["answer"] = "changed"
    tampered[1] = json.dumps(data)
    first = verify_chain(record_from_json(line) for line in tampered).first
    assert first is not None and first.seq == 2

    rows = [csv_header()] + [csv_line(r) for r in log.scan()]
    assert rows[0].startswith("seq,record_id,at,kind,actor,question,answer")
    assert "'=HYPERLINK" in rows[1] and ",'-1+2," in rows[1]


def _sha(value: str) -> str:
    import hashlib

    return hashlib.sha256(value.encode()).hexdigest()
