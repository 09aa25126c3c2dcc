"""Feedback on answers in the audit trail, on SQLite and the PostgreSQL server on this machine."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.audit import ANSWER, AuditLog, Event, Filters
from core.db import Database
from core.errors import InputError, NotFound
from core.feedback import FEEDBACK, Feedback, _keep_latest, feedback_on, give_feedback, latest_feedback
from core.types import Principal

ANN = Principal("ann", (), ("employee",))
BEN = Principal("ben", (), ("employee",))


@pytest.fixture(params=["sqlite", "postgresql"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuditLog]:
    url = (f"sqlite:///{tmp_path / 'audit.db'}" if request.param == "sqlite"
           else str(request.getfixturevalue("pg_url")))
    db = Database(url)
    yield AuditLog(db)
    db.close()


def _answer(log: AuditLog, who: Principal, question: str = "q?") -> str:
    body = {"principal": {"user_id": who.user_id, "groups": [], "roles": list(who.roles)}}
    return log.append(Event(ANSWER, who.user_id, body, question=question, answer="a.",
                            refused=False)).record_id


def test_the_latest_feedback_wins_whatever_order_the_rows_are_written_in(log: AuditLog) -> None:
    answer = _answer(log, ANN)
    later = Feedback(answer, "ann", "up", None, "f-2", "2026-01-02T00:00:00.000000Z")
    earlier = Feedback(answer, "ann", "down", "no", "f-1", "2026-01-01T00:00:00.000000Z")
    for f in (later, earlier):  # the earlier record's row comes last: it must not win
        with log.db.session() as s:
            _keep_latest(s, f)
    assert feedback_on(log, answer) == later
    newest = Feedback(answer, "ann", "down", "why", "f-3", "2026-01-03T00:00:00.000000Z")
    with log.db.session() as s:
        _keep_latest(s, newest)
    assert feedback_on(log, answer) == newest


def test_racing_feedback_leaves_the_last_record_as_the_rating(log: AuditLog) -> None:
    answer = _answer(log, ANN)
    barrier = threading.Barrier(8)

    def rate(i: int) -> None:
        barrier.wait()
        give_feedback(log, ANN, answer, "up" if i % 2 else "down", f"take {i}", "test")

    threads = [threading.Thread(target=rate, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = [r for r in log.scan() if r.kind == FEEDBACK]
    assert len(records) == 8 and log.verify().intact
    last = records[-1]
    kept = feedback_on(log, answer)
    assert kept is not None and kept.feedback_record_id == last.record_id
    assert (kept.rating, kept.comment) == (last.body["rating"], last.body["comment"])


def test_only_the_asker_rates_and_the_filter_follows_the_latest_rating(log: AuditLog) -> None:
    mine, theirs, unrated = _answer(log, ANN), _answer(log, BEN), _answer(log, ANN)
    for target in (theirs, "0f0e5b55-8d52-4c9f-a2a4-3b8f2b8b2d2f", "x"):
        with pytest.raises(NotFound, match=r"^no such answer$"):
            give_feedback(log, ANN, target, "up", None, "test")
    with pytest.raises(InputError, match="rating"):
        give_feedback(log, ANN, mine, "sideways", None, "test")
    with pytest.raises(InputError, match="U\\+0007"):
        give_feedback(log, ANN, mine, "up", "\x07", "test")
    with pytest.raises(InputError, match="2001 characters long; the limit is 2000"):
        give_feedback(log, ANN, mine, "up", "z" * 2001, "test")
    first = give_feedback(log, ANN, mine, "down", " too vague ", "test")
    assert first.comment == "too vague"
    with pytest.raises(NotFound):  # a feedback record is no answer
        give_feedback(log, ANN, first.feedback_record_id, "up", None, "test")

    def ids(value: str) -> list[str]:
        return [r.record_id for r in log.records(Filters(feedback=value))]

    assert ids("down") == [mine] and ids("up") == []
    give_feedback(log, ANN, mine, "up", None, "test")
    assert ids("up") == [mine] and ids("down") == []
    assert ids("any") == [mine]
    assert ids("none") == [unrated, theirs]
    assert [r.record_id for r in log.scan(Filters(feedback="none", user="ann"))] == [unrated]
    with pytest.raises(InputError, match="feedback: one of up, down, any, none"):
        log.records(Filters(feedback="sideways"))
    assert set(latest_feedback(log.db, [mine, theirs, unrated])) == {mine}
    assert latest_feedback(log.db, []) == {}
    assert log.verify().intact
