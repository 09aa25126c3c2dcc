"""What hostile testing found at the chat edge, each on a real server over the samples:

- stored conversations are checked on read: access lost, or a document deleted, withholds
  the answers that cite it; a deletion for legal reasons redacts them in storage;
- every string a request carries is checked once: a lone surrogate or a control character
  is a 4xx, never a 500, and a refused question is still on the audit record;
- employees see display names, never the server's folders; admins and auditors see both;
- the OpenAI route lists a refusal's passages once and names one model everywhere.

Extractive mode: the answers are the passages' own sentences, no model to wait for.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.audit import Filters
from core.ports import Embedder
from ingest.deletion import REDACTED, delete_document_recorded
from serve.answering.service import WITHHELD
from tests.serve.conftest import Api, bearer_client, serving_samples

HOTEL = "What is the hotel limit per night?"
LEAVE = "How many days of paid leave do employees get?"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, real_embedder: Embedder,
           samples: dict[str, Path]) -> Iterator[Api]:
    with serving_samples(tmp_path_factory.mktemp("hardening"), real_embedder, samples,
                         answer={"mode": "extractive"}, serve={"rate_per_minute": 10_000}) as api:
        yield api


def _client(api: Api, key: str) -> httpx.Client:
    return bearer_client(api, key, timeout=120)


def _ask(http: httpx.Client, question: str, **extra: Any) -> dict[str, Any]:
    response = http.post("/v1/chat", json={"question": question, **extra})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


# -- conversations are checked on read ---------------------------------------------------------


def test_an_answer_whose_document_the_user_lost_is_withheld_from_their_conversation(
    served: Api,
) -> None:
    users = served.container.users
    key = users.add("frank", ("finance",), ("employee",))
    with _client(served, key) as http:
        first = _ask(http, HOTEL)
        assert not first["refused"] and any(
            c["source"].endswith("expense-policy.pdf") for c in first["citations"]), first
        quote = first["citations"][0]["quote"].splitlines()[-1]  # as JSON writes it too
        conversation_id = first["conversation_id"]
        _ask(http, LEAVE, conversation_id=conversation_id)  # cites a public document
        assert quote in json.dumps(http.get(f"/v1/conversations/{conversation_id}").json())

        users.add("frank", (), ("employee",))  # frank leaves finance; his old key stays valid
        detail = http.get(f"/v1/conversations/{conversation_id}").json()
        hotel, leave = detail["messages"]
        assert hotel["question"] == HOTEL and hotel["withheld"] is True
        assert hotel["answer"]["answer"] == WITHHELD and hotel["answer"]["citations"] == []
        assert quote not in json.dumps(detail) and "expense-policy" not in json.dumps(detail)
        assert leave["withheld"] is False and leave["answer"]["citations"]

        # A follow-up does not hand the withheld answer back to the model (or the record).
        follow = _ask(http, "And what about meals?", conversation_id=conversation_id)
    record = served.container.audit.get(follow["audit_id"])
    history = record.body["history"]
    assert history[0] == {"question": HOTEL, "answer": WITHHELD}
    assert quote not in json.dumps(record.body["history"])


def test_a_deleted_document_is_withheld_and_a_legal_deletion_redacts_stored_answers(
    served: Api, tmp_path: Path,
) -> None:
    c = served.container
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "parking.md").write_text(
        "# Parking\n\nStaff park in the north garage, level two, with their badge.\n",
        encoding="utf-8")
    (extra / "canteen.md").write_text(
        "# Canteen\n\nThe canteen serves lunch from noon until two in the afternoon.\n",
        encoding="utf-8")
    assert not c.ingestor.ingest([extra]).failed
    parking = c.registry.find_by_source(str((extra / "parking.md").resolve()))
    canteen = c.registry.find_by_source(str((extra / "canteen.md").resolve()))
    assert parking and canteen

    key = c.users.add("gina", (), ("employee",))
    with _client(served, key) as http:
        asked = _ask(http, "Where do staff park?")
        assert [x["doc_id"] for x in asked["citations"]] == [parking.doc_id], asked
        lunch = _ask(http, "When does the canteen serve lunch?")
        assert [x["doc_id"] for x in lunch["citations"]] == [canteen.doc_id], lunch

        delete_document_recorded(c.ingestor, c.audit, c.conversations, "root-admin", "test",
                                 parking.doc_id, None)
        turn = http.get(f"/v1/conversations/{asked['conversation_id']}").json()["messages"][0]
        assert turn["withheld"] and "north garage" not in json.dumps(turn)

        done = served.http.delete(f"/v1/admin/documents/{canteen.doc_id}",
                                  params={"legal_reason": "court order 42"})
        assert done.status_code == 200, done.text
        assert done.json()["turns_redacted"] == 1
    stored = c.conversations.turns("gina", lunch["conversation_id"])[0].answer
    assert stored["answer"] == REDACTED and stored["redacted"] is True
    assert "noon" not in json.dumps(stored)  # gone from storage, not only from the view
    legal = c.audit.records(Filters(kind="document.legal_deletion"), 5)[0]
    assert legal.body["turns_redacted"] == 1 and legal.body["doc_id"] == canteen.doc_id


# -- one check for every string ------------------------------------------------------------------


def test_control_characters_and_lone_surrogates_are_4xx_and_refused_questions_recorded(
    served: Api,
) -> None:
    c = served.container
    key = c.users.add("ivan", (), ("employee",))
    auditor = c.users.add("aud", (), ("auditor",))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    before = c.audit.count()
    # A lone surrogate is valid JSON ("\ud800") but not Unicode text.
    for raw in (b'{"question": "hotel \\ud800 limit?"}', b'{"question": "hotel\\u0000limit?"}'):
        response = httpx.post(f"{served.base}/v1/chat", content=raw, headers=headers, timeout=60)
        assert response.status_code == 400, response.text
        assert "Traceback" not in response.text and response.json()["detail"]
    rejected = [r for r in c.audit.scan() if r.seq > before and r.actor == "ivan"]
    assert [r.kind for r in rejected] == ["answer.rejected", "answer.rejected"]
    assert rejected[0].question == "hotel \\ud800 limit?"
    assert "surrogate" in rejected[0].body["detail"]
    assert rejected[1].question == "hotel\\u0000limit?" and rejected[0].actor == "ivan"

    stream = httpx.post(f"{served.base}/v1/chat/completions", headers=headers, timeout=60,
                        content=b'{"messages": [{"role": "user", "content": "a\\udfffb"}]}')
    assert stream.status_code == 400, stream.text
    with _client(served, key) as http:
        assert http.post("/v1/chat", json={"question": HOTEL,
                                           "conversation_id": "x\x00y"}).status_code == 422
        too_long = http.post("/v1/chat", json={"question": "why " * 1000})
        assert too_long.status_code == 400 and "limit" in too_long.json()["detail"]
        earlier = http.post("/v1/chat/completions", json={"messages": [
            {"role": "user", "content": "leave " * 1000}, {"role": "assistant", "content": "28"},
            {"role": "user", "content": "And how many carry over?"}]})
        assert earlier.status_code == 400 and "an earlier question" in earlier.json()["detail"]
    latest = c.audit.records(Filters(kind="answer.rejected", user="ivan"), 2)
    assert latest[0].question == "And how many carry over?"
    assert "an earlier question" in latest[0].body["detail"]
    assert latest[1].question.startswith("why why")
    with _client(served, auditor) as http:
        for params in ({"text": "a\x00b"}, {"user": "\x1b[31m"}, {"kind": "answer\x00"}):
            response = http.get("/v1/audit/records", params=params)
            assert response.status_code == 400, (params, response.text)
            assert "control character" in response.json()["detail"]
        assert http.get("/v1/audit/records", params={"text": "hotel"}).status_code == 200
    with _client(served, key) as http:
        response = http.get("/v1/documents/a%00b")
        assert response.status_code == 400 and "control character" in response.text


def _multipart(name: bytes) -> tuple[bytes, str]:
    """A form with one file, its name written raw (clients escape what we want to send)."""
    boundary = "enclave-test-boundary"
    body = (f"--{boundary}\r\n".encode()
            + b'Content-Disposition: form-data; name="files"; filename="' + name + b'"\r\n'
            + b"Content-Type: text/plain\r\n\r\nhello there\r\n"
            + f"--{boundary}--\r\n".encode())
    return body, f"multipart/form-data; boundary={boundary}"


def test_upload_names_are_checked(served: Api) -> None:
    for name, reason in ((b"a\x00b.txt", "control character"), (b"a\x1b[31m.txt", "U+001B"),
                         (("\u00e9" * 200 + ".txt").encode(), "255 bytes")):
        body, kind = _multipart(name)
        response = served.http.post("/v1/admin/jobs", content=body,
                                    headers={"Content-Type": kind})
        assert response.status_code == 400, response.text
        assert reason in response.json()["detail"]
    fine = served.http.post("/v1/admin/jobs", files={"files": ("é" * 100 + ".txt", b"hello there")})
    assert fine.status_code == 202, fine.text


# -- display names ------------------------------------------------------------------------------


def test_employees_see_display_names_and_admins_full_paths(served: Api, samples: dict[str, Path]
                                                           ) -> None:
    c = served.container
    employee = c.users.add("jane", ("finance",), ("employee",))
    admin = c.users.add("alex", ("finance",), ("admin",))
    folder = str(samples["finance"].resolve())
    with _client(served, employee) as http:
        answer = _ask(http, HOTEL)
        shown = json.dumps(answer)
        assert answer["citations"] and folder not in shown and str(samples["public"]) not in shown
        assert {x["source"] for x in answer["citations"]} <= {"expense-policy.pdf"}, answer
        chunk = http.get(f"/v1/chunks/{answer['citations'][0]['chunk_id']}").json()
        document = http.get(f"/v1/documents/{answer['citations'][0]['doc_id']}").json()
        assert chunk["source"] == document["source"] == "expense-policy.pdf"
        refused = _ask(http, "Which rocket fuel do the interns prefer on Saturdays?")
        assert refused["refused"] and "/" not in refused["answer"].replace("n/a", ""), refused
    with _client(served, admin) as http:
        answer = _ask(http, HOTEL)
        assert all(x["source"].startswith(folder) for x in answer["citations"]), answer
    record = c.audit.get(answer["audit_id"])
    assert record.body["citations"][0]["source"].startswith(folder)
    assert record.body["citations"][0]["display"] == "expense-policy.pdf"


# -- the OpenAI-compatible route ----------------------------------------------------------------


def test_openai_refusals_list_passages_once_and_name_one_model(served: Api) -> None:
    key = served.container.users.add("oli", (), ("employee",))
    question = "Which rocket fuel do the interns prefer on Saturdays?"
    with _client(served, key) as http:
        body = {"model": "enclave", "messages": [{"role": "user", "content": question}]}
        plain = http.post("/v1/chat/completions", json=body).json()
        assert plain["refused"] and plain["model"] == "enclave", plain
        content = plain["choices"][0]["message"]["content"]
        assert content.count("Closest passages:") == 1, content
        assert content.count("[1] ") == 1, content
        models = http.get("/v1/models").json()["data"]
        assert [m["id"] for m in models] == [plain["model"]]
        streamed = http.post("/v1/chat/completions", json={**body, "stream": True}).text
        chunks = [json.loads(line[5:]) for line in streamed.splitlines()
                  if line.startswith("data:") and "[DONE]" not in line]
        assert {ch["model"] for ch in chunks} == {"enclave"}
        text = "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks
                       if "choices" in ch)
        assert text == content
