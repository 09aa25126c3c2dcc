"""The audit trail through the real API, on PostgreSQL (as deployed) and SQLite (embedded).

Questions go through a real uvicorn server to the real SmolLM2 model; auditors read the
records back; tampering is done with SQL straight into the database.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from core.audit_export import record_from_json
from core.audit_verify import verify_chain
from core.container import Container
from core.ports import Embedder
from core.settings import Settings
from tests.conftest import pg_database
from tests.serve.conftest import Api

LEAVE = "How many days of paid leave do employees get?"
HOTEL = "What is the hotel limit per night?"
PASSWORDS = "How long must passwords be?"
OFF_TOPIC = "What is the airspeed velocity of an unladen swallow?"
AUDIT_ROUTES = ("/v1/audit/records", "/v1/audit/records/{id}", "/v1/audit/export",
                "/v1/audit/verify", "/v1/audit/checkpoint")


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           real_embedder: Embedder, samples: dict[str, Path]) -> Iterator[Api]:
    root = tmp_path_factory.mktemp(f"audit-{request.param}")
    docs = root / "docs"
    shutil.copytree(samples["public"], docs)  # the handbook here changes in a test
    with pg_database() if request.param == "postgresql" else nullcontext() as url:
        settings = Settings(data_dir=root / "data", database_url=url,
                            qdrant={"hold_open": False},
                            jobs={"mode": "inline", "allowed_roots": [str(docs)]},
                            serve={"rate_per_minute": 1000})
        container = Container(settings, embedder=real_embedder)
        assert not container.ingestor.ingest([docs]).failed
        assert not container.ingestor.ingest([samples["finance"]], ["finance"]).failed
        api = Api(container)
        api.docs = docs  # type: ignore[attr-defined]
        yield api
        api.stop()
        container.close()


def _client(api: Api, user: str, groups: tuple[str, ...] = (),
            roles: tuple[str, ...] = ("employee",)) -> httpx.Client:
    key = api.container.users.add(user, groups, roles)
    return httpx.Client(base_url=api.base, timeout=300, headers={"Authorization": f"Bearer {key}"})


def _records(auditor: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = auditor.get("/v1/audit/records", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return list(response.json()["records"])


def _sse_answer(response: httpx.Response) -> dict[str, Any]:
    kind = ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            kind = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and kind == "answer":
            return dict(json.loads(line.split(":", 1)[1]))
    raise AssertionError("no answer event")


def test_every_question_gets_one_complete_record(served: Api) -> None:
    ann = _client(served, "ann")
    bob = _client(served, "bob", ("finance",))
    auditor = _client(served, "audrey", (), ("auditor",))

    answers = [ann.post("/v1/chat", json={"question": LEAVE}).json()]
    with ann.stream("POST", "/v1/chat", json={"question": OFF_TOPIC, "stream": True}) as r:
        answers.append(_sse_answer(r))
    compat = ann.post("/v1/chat/completions",
                      json={"model": "enclave", "messages": [{"role": "user", "content": LEAVE}]})
    answers.append(compat.json())
    answers.append(bob.post("/v1/chat", json={"question": HOTEL}).json())

    records = _records(auditor, kind="answer", user="ann") + _records(auditor, kind="answer",
                                                                      user="bob")
    assert len(records) == 4
    assert {r["record_id"] for r in records} == {a["audit_id"] for a in answers}
    assert [r["record_id"] for r in _records(auditor, user="ann", refused=True)] == [
        answers[1]["audit_id"]]

    for answer in answers:
        detail = auditor.get(f"/v1/audit/records/{answer['audit_id']}").json()
        body = detail["body"]
        assert detail["check"] == {"content_intact": True, "linked": True, "sealed": True,
                                   "texts_intact": True}
        assert detail["seal"]
        assert body["principal"]["user_id"] in {"ann", "bob"}
        assert body["question"] == detail["question"] and body["question"] in (LEAVE, OFF_TOPIC,
                                                                                HOTEL)
        assert body["retrieval"]["k"] == 5 and body["retrieval"]["embedding_model"]
        assert body["generation"]["prompt_version"] == "answer-v1"
        assert body["model"] and isinstance(body["timings"]["total"], float)
        assert body["retrieved"] and len(detail["passages"]) == len(body["retrieved"])
        for passage, hit in zip(detail["passages"], body["retrieved"], strict=True):
            assert passage["text"] and _sha(passage["text"]) == hit["text_sha256"]
            assert hit["doc_id"] and hit["version"] and hit["chunk_id"]
        assert body["answer"] == detail["answer"]
        if not body["refused"]:
            assert body["citations"] and all("supported" in c for c in body["citations"])
            assert body["checks"] and all("score" in c for c in body["checks"])
            for c in body["citations"]:
                cited = next(p for p in detail["passages"] if p["chunk_id"] == c["chunk_id"])
                assert c["n"] in cited["cited_as"] and c["quote"] in cited["text"]
    by_id = {a["audit_id"]: a for a in answers}
    bob_record = auditor.get(f"/v1/audit/records/{answers[3]['audit_id']}").json()
    assert bob_record["body"]["principal"] == {"user_id": "bob", "groups": ["finance"],
                                               "roles": ["employee"]}
    assert by_id[answers[0]["audit_id"]]["answer"] == \
        auditor.get(f"/v1/audit/records/{answers[0]['audit_id']}").json()["answer"]
    assert auditor.get("/v1/audit/verify").json()["intact"] is True


def test_tampering_is_named_and_a_removed_record_is_a_gap(served: Api) -> None:
    cara = _client(served, "cara")
    auditor = _client(served, "audrey2", (), ("auditor",))
    ids = [cara.post("/v1/chat", json={"question": LEAVE}).json()["audit_id"] for _ in range(3)]
    target = auditor.get(f"/v1/audit/records/{ids[1]}").json()
    engine = served.container.database.engine

    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET answer = 'Employees get 90 days.' "
                          "WHERE record_id = :id"), {"id": ids[1]})
    report = auditor.get("/v1/audit/verify").json()
    assert report["intact"] is False
    assert report["first_broken"]["record_id"] == ids[1]
    assert report["first_broken"]["seq"] == target["seq"]
    assert auditor.get(f"/v1/audit/records/{ids[1]}").json()["check"]["content_intact"] is False

    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET answer = :a WHERE record_id = :id"),
                     {"a": target["answer"], "id": ids[1]})
        row = conn.execute(text("SELECT * FROM audit_records WHERE record_id = :id"),
                           {"id": ids[1]}).mappings().one()
        conn.execute(text("DELETE FROM audit_records WHERE record_id = :id"), {"id": ids[1]})
    report = auditor.get("/v1/audit/verify").json()
    assert report["intact"] is False
    assert report["first_broken"]["seq"] == target["seq"] + 1
    assert f"record {target['seq']} is missing" in report["first_broken"]["reason"]

    with engine.begin() as conn:  # put it back as it was, seal too: the chain is whole again
        conn.execute(text("INSERT INTO audit_records (seq, record_id, kind, at, actor, refused, "
                          "unsupported, question, answer, body, prev_hash, hash, seal) VALUES "
                          "(:seq, :record_id, :kind, :at, :actor, :refused, :unsupported, "
                          ":question, :answer, :body, :prev_hash, :hash, :seal)"), dict(row))
    assert auditor.get("/v1/audit/verify").json()["intact"] is True


def test_an_altered_kept_text_is_named_by_verify_and_marked_in_the_record(served: Api) -> None:
    jack = _client(served, "jack")
    auditor = _client(served, "audrey7", (), ("auditor",))
    asked = jack.post("/v1/chat", json={"question": LEAVE}).json()
    detail = auditor.get(f"/v1/audit/records/{asked['audit_id']}").json()
    assert [p["intact"] for p in detail["passages"]] == [True] * len(detail["passages"])
    target = detail["passages"][0]
    key = (target["chunk_id"], target["text_sha256"])
    # verify names the first record that retrieved the text: perhaps an earlier one.
    first = next(r for r in served.container.audit.scan()
                 if key in {(p["chunk_id"], p.get("text_sha256"))
                            for p in r.body.get("retrieved", ())})
    engine = served.container.database.engine
    edit = text("UPDATE audit_texts SET text = :t WHERE chunk_id = :c AND text_sha256 = :h")
    with engine.begin() as conn:
        conn.execute(edit, {"t": "Employees get 90 days of paid leave.", "c": key[0], "h": key[1]})
    try:
        report = auditor.get("/v1/audit/verify").json()
        assert report["intact"] is False
        assert report["first_broken"]["record_id"] == first.record_id
        assert report["first_broken"]["seq"] == first.seq
        assert f"kept text of chunk {key[0]}" in report["first_broken"]["reason"]
        assert "altered" in report["first_broken"]["reason"]
        marked = auditor.get(f"/v1/audit/records/{asked['audit_id']}").json()
        assert marked["check"]["texts_intact"] is False
        assert marked["check"]["content_intact"] is True  # the record itself is untouched
        flags = {p["chunk_id"]: p["intact"] for p in marked["passages"]}
        assert flags.pop(key[0]) is False and set(flags.values()) <= {True}
    finally:
        with engine.begin() as conn:
            conn.execute(edit, {"t": target["text"], "c": key[0], "h": key[1]})
    assert auditor.get("/v1/audit/verify").json()["intact"] is True


def test_the_checkpoint_route_covers_its_own_record(served: Api) -> None:
    auditor = _client(served, "audrey8", (), ("auditor",))
    checkpoint = auditor.get("/v1/audit/checkpoint").json()
    own = _records(auditor, kind="audit.checkpoint", user="audrey8")
    assert [r["seq"] for r in own] == [checkpoint["seq"]]
    assert own[0]["hash"] == checkpoint["hash"] and checkpoint["signature"]
    path = served.container.settings.resolved_checkpoint_file
    assert json.loads(path.read_text().splitlines()[-1]) == checkpoint
    report = auditor.get("/v1/audit/verify").json()
    assert report["intact"] is True and report["checkpoints"] >= 2  # the first, and this one
    assert report["sealed"] == report["records"]


def test_a_record_keeps_the_text_it_cited_after_reingestion_and_legal_deletion(
    served: Api,
) -> None:
    dana = _client(served, "dana")
    auditor = _client(served, "audrey3", (), ("auditor",))
    first = dana.post("/v1/chat", json={"question": LEAVE}).json()
    assert "28" in first["answer"], first
    cited = next(c for c in first["citations"] if c["source"].endswith("handbook.md"))

    handbook = served.docs / "handbook.md"  # type: ignore[attr-defined]
    handbook.write_text(handbook.read_text().replace("28 days", "31 days"))
    job = served.http.post("/v1/admin/jobs", json={"paths": [str(handbook)]})
    assert job.status_code == 202, job.text
    done = served.http.get(f"/v1/admin/jobs/{job.json()['job_id']}").json()
    assert done["counts"].get("done") == 1, done
    assert dana.get(f"/v1/chunks/{cited['chunk_id']}").status_code == 404  # old version gone
    second = dana.post("/v1/chat", json={"question": LEAVE}).json()
    assert "31" in second["answer"] and "28" not in second["answer"]

    old = auditor.get(f"/v1/audit/records/{first['audit_id']}").json()
    old_cited = next(c for c in old["body"]["citations"] if c["chunk_id"] == cited["chunk_id"])
    passage = next(p for p in old["passages"] if p["chunk_id"] == cited["chunk_id"])
    new_cited = next(c for c in second["citations"] if c["doc_id"] == cited["doc_id"])
    assert old_cited["version"] == cited["version"] != new_cited["version"]
    assert "28 days" in passage["text"] and old_cited["quote"] in passage["text"]
    assert passage["version"] == cited["version"]

    gone = served.http.delete(f"/v1/admin/documents/{cited['doc_id']}",
                              params={"legal_reason": "erasure request 7"})
    assert gone.status_code == 200, gone.text
    assert gone.json()["texts_purged"] >= 2  # both versions' passages
    purged = auditor.get(f"/v1/audit/records/{first['audit_id']}").json()
    passage = next(p for p in purged["passages"] if p["chunk_id"] == cited["chunk_id"])
    assert passage["text"] is None and passage["purge_reason"] == "legal: erasure request 7"
    event = _records(auditor, kind="document.legal_deletion")[0]
    detail = auditor.get(f"/v1/audit/records/{event['record_id']}").json()
    assert event["actor"] == "root-admin"
    assert detail["body"]["reason"] == "erasure request 7"
    assert detail["body"]["doc_id"] == cited["doc_id"]
    submitted = _records(auditor, kind="job.submitted")
    assert any(r["record_id"] for r in submitted if r["actor"] == "root-admin")
    assert auditor.get("/v1/audit/verify").json()["intact"] is True


def test_only_auditors_read_the_audit_and_they_cannot_chat_into_documents(served: Api) -> None:
    erin = _client(served, "erin")
    fred = _client(served, "fred", ("finance",))
    auditor = _client(served, "audrey4", (), ("auditor",))
    admin = served.http
    anonymous = httpx.Client(base_url=served.base, timeout=30)
    answer = fred.post("/v1/chat", json={"question": HOTEL}).json()
    finance = [c for c in answer["citations"] if c["source"].endswith(".pdf")]
    assert finance, answer

    for route in AUDIT_ROUTES:
        path = route.format(id=answer["audit_id"])
        assert anonymous.get(path).status_code == 401, path
        for who in (erin, fred, admin):
            response = who.get(path)
            assert response.status_code == 403, (path, response.text)
            assert "auditor role" in response.json()["detail"]
        assert auditor.get(path).status_code == 200, path

    # The auditor role opens the trail, not the documents.
    assert auditor.get(f"/v1/chunks/{finance[0]['chunk_id']}").status_code == 404
    assert auditor.get(f"/v1/documents/{finance[0]['doc_id']}").status_code == 404
    own = auditor.post("/v1/chat", json={"question": HOTEL}).json()
    assert all(c["doc_id"] != finance[0]["doc_id"] for c in own["citations"])
    assert "180" not in own["answer"]
    record = auditor.get(f"/v1/audit/records/{own['audit_id']}").json()
    assert record["actor"] == "audrey4"
    assert all(p["doc_id"] != finance[0]["doc_id"] for p in record["passages"])


def test_exports_stream_verifiable_jsonl_and_csv(served: Api) -> None:
    gail = _client(served, "gail")
    auditor = _client(served, "audrey5", (), ("auditor",))
    gail.post("/v1/chat", json={"question": LEAVE})
    with auditor.stream("GET", "/v1/audit/export", params={"format": "jsonl"}) as r:
        assert r.status_code == 200
        assert "attachment" in r.headers["content-disposition"]
        lines = [line for line in r.iter_lines() if line]
    assert verify_chain(record_from_json(line) for line in lines).intact
    assert any(json.loads(line)["actor"] == "gail" for line in lines)

    csv_text = auditor.get("/v1/audit/export", params={"format": "csv", "user": "gail"}).text
    assert csv_text.startswith("seq,record_id,at,kind,actor,question")
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [(r["actor"], r["question"]) for r in rows] == [("gail", LEAVE)]
    gails = [json.loads(line) for line in lines if json.loads(line)["actor"] == "gail"]
    assert rows[0]["hash"] == gails[0]["hash"] and rows[0]["answer"] == gails[0]["answer"]
    assert int(rows[0]["citations"]) == len(gails[0]["body"]["citations"])
    exports = _records(auditor, kind="audit.exported", user="audrey5")
    assert len(exports) == 2
    assert auditor.get("/v1/audit/export", params={"format": "xml"}).status_code == 422
    bad = auditor.get("/v1/audit/records", params={"since": "yesterday"})
    assert bad.status_code == 400 and "ISO 8601" in bad.json()["detail"]
    assert auditor.get("/v1/audit/records/not-a-record").status_code == 404


def _sha(value: str) -> str:
    import hashlib

    return hashlib.sha256(value.encode()).hexdigest()


def test_unanswered_questions_are_recorded_too(
    served: Api, tmp_path: Path, real_embedder: Embedder
) -> None:
    from core.audit import Filters
    from tests.conftest import free_port

    # The model server is down: the caller gets 503, the auditor a record of the question.
    settings = served.container.settings.model_copy(update={
        "llm": served.container.settings.llm.model_copy(update={
            "mode": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1",
            "connect_retries": 0, "timeout_s": 5})})
    down = Api(Container(settings, embedder=real_embedder))
    try:
        key = down.container.users.add("hank", (), ("employee",))
        failed = httpx.post(f"{down.base}/v1/chat", json={"question": PASSWORDS}, timeout=60,
                            headers={"Authorization": f"Bearer {key}"})
        assert failed.status_code == 503, failed.text
    finally:
        down.stop()
        down.container.close()
    record = served.container.audit.records(Filters(user="hank"))[0]
    assert record.kind == "answer.failed" and record.question == PASSWORDS
    assert record.body["error"] == "ModelError" and record.body["detail"]

    # An answer that fails the second access check is withheld, and that is on the record
    # (every exit: tests/serve/answering/test_every_exit.py).
    assert served.container.audit.verify().intact
