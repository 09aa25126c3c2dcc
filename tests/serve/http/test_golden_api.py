"""Golden sets and evaluation runs through the real API: an employee's answer is promoted by
an auditor, read back, exported and removed; runs recorded by the RunBook are listed, shown
and reported. Answers are extractive (verbatim sentences with real citations, no model)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.golden import parse_golden
from core.ports import Embedder
from serve.http.routes.evaluation import MAX_REPORT_RUNS, REPORT_CSP
from tests.serve.conftest import Api, bearer_client, serving_samples

LEAVE = "How many days of paid leave do employees get?"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, real_embedder: Embedder,
           samples: dict[str, Path]) -> Iterator[Api]:
    with serving_samples(tmp_path_factory.mktemp("golden"), real_embedder, samples,
                         answer={"mode": "extractive"}, serve={"rate_per_minute": 1000}) as api:
        yield api


@pytest.fixture(scope="module")
def clients(served: Api) -> Iterator[dict[str, httpx.Client]]:
    users = served.container.users
    made = {"emma": bearer_client(served, users.add("emma", (), ("employee",))),
            "aldo": bearer_client(served, users.add("aldo", (), ("auditor",))),
            "admin": served.http}
    yield made
    made["emma"].close()
    made["aldo"].close()


@pytest.fixture(scope="module")
def answer(clients: dict[str, httpx.Client]) -> dict[str, Any]:
    reply = clients["emma"].post("/v1/chat", json={"question": LEAVE})
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    assert body["outcome"] == "answered" and body["citations"], body
    return body


def _promote(client: httpx.Client, set_name: str, **body: Any) -> httpx.Response:
    return client.post(f"/v1/golden/sets/{set_name}/questions", json=body)


def test_an_auditor_promotes_an_answer_and_exports_the_set(
        served: Api, clients: dict[str, httpx.Client], answer: dict[str, Any]) -> None:
    aldo = clients["aldo"]
    cited = list(dict.fromkeys(c["doc_id"] for c in answer["citations"] if c["supported"]))
    corrected = [cited[0], "public/leave-policy.md"]  # the answer missed a document
    record = served.container.audit.get(answer["audit_id"])
    added = _promote(aldo, "policies", from_record=answer["audit_id"], documents=corrected,
                     reference="28 days of paid leave a year.", facts=["28 days"])
    assert added.status_code == 200, added.text
    question = added.json()
    assert question == {"id": f"audit-{record.seq}", "question": LEAVE, "user": "emma",
                        "groups": [], "answerable": True, "documents": corrected,
                        "reference": "28 days of paid leave a year.", "facts": ["28 days"],
                        "added_by": "aldo", "from_record": answer["audit_id"]}

    sets = aldo.get("/v1/golden/sets").json()["sets"]
    assert ("policies", 1) in [(s["name"], s["questions"]) for s in sets]
    shown = aldo.get("/v1/golden/sets/policies")
    assert shown.status_code == 200 and shown.json() == {"name": "policies",
                                                         "questions": [question]}
    # Admins use the same routes.
    assert clients["admin"].get("/v1/golden/sets/policies").json() == shown.json()

    # The trail says who added what, from which record.
    trail = aldo.get("/v1/audit/records", params={"kind": "golden.added"}).json()["records"]
    assert len(trail) == 1 and trail[0]["actor"] == "aldo"
    body = aldo.get(f"/v1/audit/records/{trail[0]['record_id']}").json()["body"]
    assert body["channel"] == "api" and body["set"] == "policies"
    assert body["from_record"] == answer["audit_id"] and body["question_id"] == question["id"]

    exported = aldo.get("/v1/golden/sets/policies", params={"format": "jsonl"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    assert 'filename="policies.jsonl"' in exported.headers["content-disposition"]
    [parsed] = parse_golden(exported.text)
    assert parsed.qid == question["id"] and list(parsed.documents) == corrected
    assert parsed.added_by == "aldo" and parsed.from_record == answer["audit_id"]

    # By default the record decides: what it cited (and the verifier backed), answerable.
    again = _promote(aldo, "defaults", from_record=answer["audit_id"])
    assert again.status_code == 200, again.text
    assert again.json()["documents"] == cited and again.json()["answerable"] is True


def test_what_cannot_be_promoted_is_refused_with_a_reason(
        served: Api, clients: dict[str, httpx.Client], answer: dict[str, Any]) -> None:
    aldo = clients["aldo"]
    first = _promote(aldo, "refusals", from_record=answer["audit_id"], id="leave-1")
    assert first.status_code == 200, first.text

    twice = _promote(aldo, "refusals", from_record=answer["audit_id"], id="leave-1")
    assert twice.status_code == 400 and "already holds" in twice.json()["detail"]
    unknown = _promote(aldo, "refusals", from_record=str(uuid.uuid4()))
    assert unknown.status_code == 404 and "no audit record" in unknown.json()["detail"]
    not_answer = served.container.audit.records(_kind("golden.added"), 1)[0]
    refused = _promote(aldo, "refusals", from_record=not_answer.record_id)
    assert refused.status_code == 400 and "is not an answer" in refused.json()["detail"]
    for bad in ("Policies", "-policies", "a" * 64):
        named = _promote(aldo, bad, from_record=answer["audit_id"])
        assert named.status_code == 400 and "golden set name" in named.json()["detail"], bad
    assert aldo.get("/v1/golden/sets/Policies").status_code == 400
    assert aldo.get("/v1/golden/sets/no-such-set").status_code == 404

    # Sizes are bounded, and text is text.
    for body in ({"reference": "x" * 4001}, {"documents": [f"d{i}" for i in range(51)]},
                 {"facts": [f"f{i}" for i in range(51)]}, {"documents": [""]},
                 {"unknown": 1}):
        oversized = _promote(aldo, "refusals", from_record=answer["audit_id"], **body)
        assert oversized.status_code == 422, (body, oversized.text)
    control = _promote(aldo, "refusals", from_record=answer["audit_id"], id="leave-2",
                       documents=["a\x00b"])
    assert control.status_code == 400, control.text
    assert [q["id"] for q in aldo.get("/v1/golden/sets/refusals").json()["questions"]] == \
        ["leave-1"]

    # Removing is recorded too, with what was removed; a set left empty is gone.
    removed = aldo.delete("/v1/golden/sets/refusals/questions/leave-1")
    assert removed.status_code == 200 and removed.json() == {"set": "refusals", "id": "leave-1",
                                                             "removed": True}
    trail = served.container.audit.records(_kind("golden.removed"), 5)
    assert trail[0].actor == "aldo" and trail[0].body["question"]["id"] == "leave-1"
    assert aldo.delete("/v1/golden/sets/refusals/questions/leave-1").status_code == 404
    assert aldo.get("/v1/golden/sets/refusals").status_code == 404


def _kind(kind: str) -> Any:
    from core.audit import Filters

    return Filters(kind=kind)


def _run(served: Api, config: str, *, done: bool = True, recall: float = 0.5) -> str:
    book = served.container.eval_runs
    run_id = book.start("batch-1", "policies", "0" * 64, config, {"k": 4}, "root-admin")
    if not done:
        book.fail(run_id, "the endpoint http://vllm:8000 could not be reached")
        return run_id
    figures = {"questions": 2, "expected_answer": 1, "expected_none": 1, "errors": 0,
               "outcome_accuracy": 1.0, "answerable_answered": 1.0, "citation_precision": 0.9,
               "citation_recall": recall, "latency_p50_s": 1.5, "latency_p95_s": 2.5}
    results = [{"id": "leave-1", "question": LEAVE, "answerable": True, "outcome": "answered",
                "correct_outcome": True, "answer": "28 days [1].", "cited": ["handbook"]},
               {"id": "moon-1", "question": "How far is the moon?", "answerable": False,
                "outcome": "not_found", "correct_outcome": True, "answer": "", "cited": []}]
    book.finish(run_id, figures, results)
    return run_id


def test_runs_are_listed_shown_and_reported(served: Api,
                                            clients: dict[str, httpx.Client]) -> None:
    older = _run(served, "baseline-k4", recall=0.5)
    failed = _run(served, "vllm", done=False)
    newer = _run(served, "hybrid-k8", recall=0.75)
    aldo, admin = clients["aldo"], clients["admin"]

    listed = admin.get("/v1/eval/runs").json()
    ids = [r["run_id"] for r in listed["runs"]]
    assert ids[:3] == [newer, failed, older] and listed["next_before"] is None
    shown = {r["run_id"]: r for r in listed["runs"]}
    assert shown[failed]["status"] == "failed" and "could not be reached" in shown[failed]["reason"]
    assert shown[newer]["figures"]["citation_recall"] == 0.75
    assert shown[newer]["created_by"] == "root-admin" and shown[newer]["batch_id"] == "batch-1"
    assert "results" not in shown[newer]
    page = aldo.get("/v1/eval/runs", params={"limit": 1}).json()
    assert [r["run_id"] for r in page["runs"]] == [newer] and page["next_before"]
    rest = aldo.get("/v1/eval/runs", params={"limit": 1, "before": page["next_before"]}).json()
    assert [r["run_id"] for r in rest["runs"]] == [failed]

    one = aldo.get(f"/v1/eval/runs/{newer}")
    assert one.status_code == 200 and [r["id"] for r in one.json()["results"]] == \
        ["leave-1", "moon-1"]
    assert aldo.get(f"/v1/eval/runs/{newer[:8]}").json()["run_id"] == newer  # a prefix will do
    missing = aldo.get(f"/v1/eval/runs/{uuid.uuid4()}")
    assert missing.status_code == 404 and "no evaluation run" in missing.json()["detail"]

    report = aldo.get("/v1/eval/report", params={"run": newer, "baseline": older})
    assert report.status_code == 200, report.text
    assert report.headers["content-type"].startswith("text/html")
    assert report.headers["content-security-policy"] == REPORT_CSP
    assert "script-src" not in REPORT_CSP and "sandbox" in REPORT_CSP
    assert report.headers["x-content-type-options"] == "nosniff"
    assert "<svg" in report.text and "<script" not in report.text.lower()
    assert "hybrid-k8" in report.text and "baseline-k4" in report.text
    side = admin.get("/v1/eval/report", params=[("run", older), ("run", newer), ("run", failed)])
    assert side.status_code == 200 and "<svg" in side.text and "could not be reached" in side.text

    unknown = aldo.get("/v1/eval/report", params={"run": str(uuid.uuid4())})
    assert unknown.status_code == 404 and "no evaluation run" in unknown.json()["detail"]
    bad_base = aldo.get("/v1/eval/report", params={"run": newer, "baseline": str(uuid.uuid4())})
    assert bad_base.status_code == 404
    none = aldo.get("/v1/eval/report")
    assert none.status_code == 400 and "at least one run" in none.json()["detail"]
    only_base = aldo.get("/v1/eval/report", params={"run": older, "baseline": older})
    assert only_base.status_code == 400
    many = aldo.get("/v1/eval/report", params=[("run", _run(served, f"c{i}"))
                                                 for i in range(MAX_REPORT_RUNS + 1)])
    assert many.status_code == 400 and f"at most {MAX_REPORT_RUNS}" in many.json()["detail"]


def test_an_employee_gets_none_of_it(served: Api, clients: dict[str, httpx.Client],
                                     answer: dict[str, Any]) -> None:
    routes = [("GET", "/v1/eval/runs"), ("GET", "/v1/eval/runs/abcdef12"),
              ("GET", "/v1/eval/report?run=abcdef12"), ("GET", "/v1/golden/sets"),
              ("GET", "/v1/golden/sets/policies"), ("GET", "/v1/golden/sets/policies?format=jsonl"),
              ("POST", "/v1/golden/sets/policies/questions"),
              ("DELETE", "/v1/golden/sets/policies/questions/x")]
    body = {"from_record": answer["audit_id"]}
    with httpx.Client(base_url=served.base, timeout=30) as anonymous:
        for method, path in routes:
            json = body if method == "POST" else None
            refused = clients["emma"].request(method, path, json=json)
            assert refused.status_code == 403, (method, path, refused.text)
            assert "admin or the auditor role" in refused.json()["detail"]
            assert anonymous.request(method, path, json=json).status_code == 401, (method, path)
    assert all(r.actor != "emma" for r in served.container.audit.records(_kind("golden.added"), 50))
