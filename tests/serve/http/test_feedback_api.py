"""Feedback on answers through the real API, on SQLite (embedded) and PostgreSQL (deployed).

Employees ask through a real uvicorn server (extractive answers: no model, real retrieval and
verification) and rate what they got; the trail holds each rating as a record of its own,
and auditors filter answers by their latest rating.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.admin_records import record_admin
from core.audit import ANSWER, Event
from core.feedback import FEEDBACK, MAX_COMMENT_CHARS
from core.ports import Embedder
from core.settings import Settings
from tests.conftest import pg_database
from tests.serve.conftest import Api

LEAVE = "How many days of paid leave do employees get?"
PASSWORDS = "How long must passwords be?"
HOTEL = "What is the hotel limit per night?"
NO_SUCH = "no such answer"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           real_embedder: Embedder, samples: dict[str, Path]) -> Iterator[Api]:
    from core.container import Container

    root = tmp_path_factory.mktemp(f"feedback-{request.param}")
    with pg_database() if request.param == "postgresql" else nullcontext() as url:
        settings = Settings(data_dir=root / "data", database_url=url,
                            answer={"mode": "extractive"}, qdrant={"hold_open": False},
                            jobs={"mode": "inline"}, serve={"rate_per_minute": 1000})
        container = Container(settings, embedder=real_embedder)
        assert not container.ingestor.ingest([samples["public"]]).failed
        api = Api(container)
        yield api
        api.stop()
        container.close()


def _client(api: Api, user: str, roles: tuple[str, ...] = ("employee",)) -> httpx.Client:
    key = api.container.users.add(user, (), roles)
    return httpx.Client(base_url=api.base, timeout=120, headers={"Authorization": f"Bearer {key}"})


def _ask(http: httpx.Client, question: str) -> str:
    reply = http.post("/v1/chat", json={"question": question})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["audit_id"])


def _rate(http: httpx.Client, audit_id: str, **body: Any) -> httpx.Response:
    return http.post(f"/v1/answers/{audit_id}/feedback", json=body)


def _feedback_records(api: Api, answer_id: str) -> list[Any]:
    return [r for r in api.container.audit.scan()
            if r.kind == FEEDBACK and r.body["answer_record_id"] == answer_id]


def _listed(auditor: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    reply = auditor.get("/v1/audit/records", params={"limit": 500, **params})
    assert reply.status_code == 200, reply.text
    return list(reply.json()["records"])


def test_the_asker_rates_an_answer_and_the_trail_names_it(served: Api) -> None:
    ann, auditor = _client(served, "ann"), _client(served, "audra", ("auditor",))
    answer_id = _ask(ann, LEAVE)
    answer = served.container.audit.get(answer_id)

    comment = "It left out the carry-over rule.\nSee section 2."
    given = _rate(ann, answer_id, rating="down", comment=f"  {comment}  ")
    assert given.status_code == 200, given.text
    body = given.json()
    assert body["answer_record_id"] == answer_id and body["rating"] == "down"
    assert body["comment"] == comment  # kept as written, outer blanks aside
    [record] = _feedback_records(served, answer_id)
    assert record.record_id == body["feedback_record_id"] and record.at == body["at"]
    assert record.actor == "ann" and record.seq > answer.seq
    assert record.body == {"channel": "api", "answer_record_id": answer_id,
                           "answer_seq": answer.seq, "answer_hash": answer.hash,
                           "rating": "down", "comment": comment}
    assert served.container.audit.verify().intact
    assert ann.get(f"/v1/answers/{answer_id}/feedback").json() == body

    # A change of mind is one more record; the latest rating is the answer's.
    changed = _rate(ann, answer_id, rating="up")
    assert changed.status_code == 200 and changed.json()["comment"] is None
    assert len(_feedback_records(served, answer_id)) == 2
    assert ann.get(f"/v1/answers/{answer_id}/feedback").json()["rating"] == "up"
    [listed] = [r for r in _listed(auditor, user="ann", feedback="up")
                if r["record_id"] == answer_id]
    assert listed["feedback"] == "up"
    assert answer_id not in {r["record_id"] for r in _listed(auditor, feedback="down")}
    detail = auditor.get(f"/v1/audit/records/{answer_id}").json()
    assert detail["feedback"] == "up"
    assert detail["latest_feedback"] == changed.json()
    # The feedback records themselves are in the trail for auditors, and verify.
    kinds = [r["kind"] for r in _listed(auditor, user="ann")]
    assert kinds.count(FEEDBACK) == 2
    rated = auditor.get(f"/v1/audit/records/{body['feedback_record_id']}").json()
    assert rated["check"]["content_intact"] and rated["body"]["answer_hash"] == answer.hash
    assert rated["latest_feedback"] is None and rated["feedback"] is None
    assert auditor.get("/v1/audit/verify").json()["intact"] is True


def test_only_the_askers_own_answers_can_be_rated(served: Api) -> None:
    cleo, dev = _client(served, "cleo"), _client(served, "dev")
    answer_id = _ask(cleo, PASSWORDS)
    audit = served.container.audit
    before = audit.count()
    own_admin = record_admin(audit, "cleo", "user.key_added", "cli").record_id
    rated = _rate(cleo, answer_id, rating="up").json()["feedback_record_id"]
    # Someone else's answer; no record; no id; cleo's own records that are not answers.
    attempts = [(dev, answer_id), (cleo, str(uuid.uuid4())), (cleo, "not-an-id"),
                (cleo, own_admin), (cleo, rated)]
    for http, target in attempts:
        refused = _rate(http, target, rating="down")
        # One answer for all: nothing tells another's answer from one that does not exist.
        assert refused.status_code == 404, (target, refused.text)
        assert refused.json() == {"error": "not_found", "detail": NO_SUCH}
    assert audit.count() == before + 2  # the admin record and cleo's one rating
    assert audit.verify().intact

    mine = dev.get(f"/v1/answers/{answer_id}/feedback")
    unknown = cleo.get(f"/v1/answers/{uuid.uuid4()}/feedback")
    assert mine.status_code == unknown.status_code == 404
    assert mine.json()["detail"] == unknown.json()["detail"]
    unrated = _ask(cleo, HOTEL)
    assert cleo.get(f"/v1/answers/{unrated}/feedback").status_code == 404
    assert httpx.post(f"{served.base}/v1/answers/{answer_id}/feedback",
                      json={"rating": "up"}).status_code == 401


def test_bad_feedback_is_refused_with_a_reason(served: Api) -> None:
    eve = _client(served, "eve")
    answer_id = _ask(eve, LEAVE)
    before = len(_feedback_records(served, answer_id))

    long = _rate(eve, answer_id, rating="down", comment="x" * (MAX_COMMENT_CHARS + 1))
    assert long.status_code == 422 and "comment" in long.json()["detail"]
    assert str(MAX_COMMENT_CHARS) in long.json()["detail"]
    bell = _rate(eve, answer_id, rating="down", comment="ring \x07 ring")
    assert bell.status_code == 400
    assert bell.json() == {"error": "invalid_request",
                           "detail": "the comment holds the control character U+0007"}
    for body in ({"rating": "meh"}, {}, {"rating": "up", "extra": 1}, {"rating": None}):
        wrong = _rate(eve, answer_id, **body)
        assert wrong.status_code == 422, (body, wrong.text)
        assert wrong.json()["error"] == "invalid_request" and wrong.json()["detail"]
    broken = eve.post(f"/v1/answers/{answer_id}/feedback", content=b"{not json",
                      headers={"Content-Type": "application/json"})
    assert broken.status_code == 422
    assert len(_feedback_records(served, answer_id)) == before  # nothing was recorded

    longest = _rate(eve, answer_id, rating="down", comment="y" * MAX_COMMENT_CHARS)
    assert longest.status_code == 200 and len(longest.json()["comment"]) == MAX_COMMENT_CHARS
    blank = _rate(eve, answer_id, rating="up", comment=" \n ")
    assert blank.status_code == 200 and blank.json()["comment"] is None


def test_auditors_filter_answers_by_their_feedback(served: Api) -> None:
    finn, auditor = _client(served, "finn"), _client(served, "aurelio", ("auditor",))
    down, up, unrated = (_ask(finn, q) for q in (LEAVE, PASSWORDS, HOTEL))
    assert _rate(finn, down, rating="down", comment="wrong").status_code == 200
    assert _rate(finn, up, rating="up").status_code == 200

    def ids(**params: Any) -> list[str]:
        return [r["record_id"] for r in _listed(auditor, user="finn", **params)]

    assert ids(feedback="down") == [down]
    assert ids(feedback="up") == [up]
    assert ids(feedback="any") == [up, down]  # newest first
    assert ids(feedback="none") == [unrated]
    everyone = _listed(auditor, feedback="down")
    assert everyone and all(r["kind"] == ANSWER and r["feedback"] == "down" for r in everyone)
    assert {r["feedback"] for r in _listed(auditor, user="finn", kind=ANSWER)} == {
        "down", "up", None}
    for bogus in ("bogus", "UP"):
        refused = auditor.get("/v1/audit/records", params={"feedback": bogus})
        assert refused.status_code == 422 and "feedback" in refused.json()["detail"]

    export = auditor.get("/v1/audit/export", params={"feedback": "down", "user": "finn"})
    assert export.status_code == 200
    assert [json.loads(line)["record_id"] for line in export.text.splitlines()] == [down]
    [exported] = [r for r in served.container.audit.scan() if r.kind == "audit.exported"
                  and r.actor == "aurelio"]
    assert exported.body["filters"] == {"user": "finn", "feedback": "down"}


def test_the_feedback_route_is_rate_limited_per_key(api_factory: Callable[..., Api]) -> None:
    api = api_factory(serve={"rate_per_minute": 3}, answer={"mode": "extractive"})
    key = api.container.users.add("rita", (), ("employee",))
    principal = {"user_id": "rita", "groups": [], "roles": ["employee"]}
    answer = api.container.audit.append(Event(ANSWER, "rita", {"principal": principal},
                                              question="q?", answer="a.", refused=False))
    with httpx.Client(base_url=api.base, timeout=60,
                      headers={"Authorization": f"Bearer {key}"}) as http:
        replies = [_rate(http, answer.record_id, rating="up") for _ in range(4)]
    assert [r.status_code for r in replies] == [200, 200, 200, 429]
    assert replies[-1].json()["error"] == "rate_limited"
    assert int(replies[-1].headers["retry-after"]) >= 1
    assert len(_feedback_records(api, answer.record_id)) == 3
