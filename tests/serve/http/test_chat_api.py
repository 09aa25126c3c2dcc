"""The query service on a real HTTP server: chat, streaming, conversations, cited text,
the OpenAI-compatible endpoint (driven by the official openai client), and limits.

The model is the real SmolLM2-135M in process; the documents are the demo samples, the
finance ones readable by the finance group only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from core.container import Container
from core.errors import ModelError
from core.ports import Embedder, FakeGenerator
from core.settings import Settings
from tests.serve.conftest import Api, bearer_client, serving_samples

LEAVE = "How many days of paid leave do employees get?"
HOTEL = "What is the hotel limit per night?"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, real_embedder: Embedder,
           samples: dict[str, Path]) -> Iterator[Api]:
    with serving_samples(tmp_path_factory.mktemp("chat"), real_embedder, samples,
                         serve={"rate_per_minute": 1000}) as api:
        yield api


def _client(api: Api, key: str) -> httpx.Client:
    return bearer_client(api, key, timeout=300)


def _events(response: httpx.Response) -> list[tuple[str, dict]]:
    events, kind = [], "message"
    for line in response.iter_lines():
        if line.startswith("event:"):
            kind = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            events.append((kind, json.loads(line.split(":", 1)[1])))
            kind = "message"
    return events


def test_the_openai_client_talks_to_enclave(served: Api) -> None:
    key = served.container.users.add("olga", (), ("employee",))
    client = openai.OpenAI(base_url=f"{served.base}/v1", api_key=key, max_retries=0)
    assert [m.id for m in client.models.list()] == ["enclave"]

    reply = client.chat.completions.create(
        model="enclave", messages=[{"role": "user", "content": LEAVE}])
    content = reply.choices[0].message.content or ""
    assert "28" in content and "Sources:" in content and "handbook.md" in content
    citations = (reply.model_extra or {})["citations"]
    assert citations and all(c["supported"] for c in citations)

    streamed = client.chat.completions.create(
        model="enclave", messages=[{"role": "user", "content": LEAVE}], stream=True)
    pieces, finish, extra = [], None, {}
    for chunk in streamed:
        pieces.append(chunk.choices[0].delta.content or "")
        finish = chunk.choices[0].finish_reason or finish
        extra = chunk.model_extra or extra
    # The model may word it differently run to run; the shape is what is fixed.
    joined = "".join(pieces)
    assert "28" in joined and "\n\nSources:\n[1] " in joined and finish == "stop"
    assert extra["citations"] and all(c["supported"] for c in extra["citations"])

    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{served.base}/v1", api_key="enc_wrong", max_retries=0) \
            .chat.completions.create(model="enclave", messages=[{"role": "user", "content": LEAVE}])


def test_chat_streams_verified_sentences_then_the_answer_and_keeps_the_conversation(
    served: Api,
) -> None:
    key = served.container.users.add("sam", (), ("employee",))
    with _client(served, key) as http:
        with http.stream("POST", "/v1/chat", json={"question": LEAVE, "stream": True}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            events = _events(r)
        kinds = [k for k, _ in events]
        # Verified sentences only, never the model's raw tokens; then the whole answer.
        assert kinds[-1] == "answer" and kinds.count("sentence") >= 1 and "token" not in kinds
        answer = events[-1][1]
        assert answer["outcome"] == "answered" and not answer["refused"]
        assert answer["citations"] and "28" in answer["answer"]
        sentences = [data for kind, data in events if kind == "sentence"]
        assert all(s["supported"] and s["citations"] for s in sentences)
        # What streamed is, word for word, the answer that was recorded.
        assert answer["answer"].split("\n\n")[0] == " ".join(s["text"] for s in sentences)
        record = served.container.audit.get(answer["audit_id"])
        assert record.answer == answer["answer"]
        assert record.body["streaming"] == "verified-sentences"
        conversation_id = answer["conversation_id"]

        follow = http.post("/v1/chat", json={"question": "And how many carry over?",
                                             "conversation_id": conversation_id})
        assert follow.status_code == 200, follow.text
        mine = http.get("/v1/conversations").json()["conversations"]
        assert [(c["conversation_id"], c["turns"]) for c in mine] == [(conversation_id, 2)]
        detail = http.get(f"/v1/conversations/{conversation_id}").json()
        assert [m["question"] for m in detail["messages"]] == [LEAVE, "And how many carry over?"]

    other = served.container.users.add("tess", (), ("employee",))
    with _client(served, other) as http:
        assert http.get(f"/v1/conversations/{conversation_id}").status_code == 404
        assert http.get("/v1/conversations").json()["conversations"] == []
        stolen = http.post("/v1/chat", json={"question": "more?", "conversation_id": conversation_id})
        assert stolen.status_code == 404


def test_cited_text_opens_only_for_readers(served: Api) -> None:
    finance = served.container.users.add("fin", ("finance",), ("employee",))
    outsider = served.container.users.add("out", (), ("employee",))
    with _client(served, finance) as http:
        answer = http.post("/v1/chat", json={"question": HOTEL}).json()
    cited = [c for c in answer["citations"] if c["source"].endswith("expense-policy.pdf")]
    assert cited, answer
    doc_id, chunk_id = cited[0]["doc_id"], cited[0]["chunk_id"]
    with _client(served, finance) as http:
        assert http.get(f"/v1/documents/{doc_id}").json()["title"]
        text = http.get(f"/v1/chunks/{chunk_id}").json()["text"]
        assert cited[0]["quote"] in text
    with _client(served, outsider) as http:
        for path in (f"/v1/documents/{doc_id}", f"/v1/chunks/{chunk_id}"):
            response = http.get(path)
            assert response.status_code == 404, response.text
        refused = http.post("/v1/chat", json={"question": HOTEL}).json()
        assert "expense-policy" not in json.dumps(refused) and doc_id not in json.dumps(refused)


def test_bad_requests_and_limits(served: Api, tmp_path: Path, real_embedder: Embedder) -> None:
    key = served.container.users.add("lim", (), ("employee",))
    with _client(served, key) as http:
        cases = [
            http.post("/v1/chat", json={}),
            http.post("/v1/chat", json={"question": "a", "messages": [{"role": "user", "content": "b"}]}),
            http.post("/v1/chat", json={"messages": [{"role": "assistant", "content": "hi"}]}),
            http.post("/v1/chat", json={"question": "  "}),
            http.post("/v1/chat", json={"question": "x" * 3000}),
            http.post("/v1/chat", content=b"{broken", headers={"content-type": "application/json"}),
            http.post("/v1/chat/completions", json={"model": "enclave", "messages": []}),
            http.post("/v1/chat", json={"question": "q" * 300_000}),  # over 256 KB
        ]
        for response in cases:
            assert 400 <= response.status_code < 500, response.text
            assert response.json()["detail"] and "Traceback" not in response.text
        assert cases[-1].status_code == 413

        def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'{"question": "'
            for _ in range(300):
                yield b"q" * 1024
            yield b'"}'

        unsized = http.post("/v1/chat", content=chunked(),
                            headers={"content-type": "application/json"})
        assert unsized.status_code == 413 and "over 256 KB" in unsized.json()["detail"]

        leases = [served.app_gate().take(), served.app_gate().take()]  # the server allows 2
        try:
            busy = http.post("/v1/chat", json={"question": LEAVE})
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            busy_stream = http.post("/v1/chat", json={"question": LEAVE, "stream": True})
            assert busy_stream.status_code == 503
        finally:
            for lease in leases:
                lease.release()
    assert httpx.post(f"{served.base}/v1/chat", json={"question": LEAVE}).status_code == 401

    limited = Container(Settings(data_dir=tmp_path / "data", serve={"rate_per_minute": 3},
                                 qdrant={"hold_open": False}), embedder=real_embedder)
    api = Api(limited)
    try:
        key = limited.users.add("rita", (), ("employee",))
        with _client(api, key) as http:
            codes = [http.get("/v1/conversations").status_code for _ in range(4)]
            assert codes == [200, 200, 200, 429]
            assert int(http.get("/v1/conversations").headers["retry-after"]) >= 1
    finally:
        api.stop()
        limited.close()


def test_every_route_but_health_needs_credentials(served: Api) -> None:
    paths = served.http.get("/openapi.json").json()["paths"]  # itself behind a key
    checked = 0
    for template, operations in paths.items():
        if template in ("/healthz", "/readyz"):
            continue
        path = template.replace("{", "").replace("}", "")  # any value for path parameters
        for method in operations:
            response = httpx.request(method.upper(), served.base + path, json={"question": "x"})
            assert response.status_code == 401, (method, template, response.text)
            checked += 1
    assert checked >= 13  # chat, 2 conversations, document, chunk, 2 openai, 6 admin
    for hidden in ("/openapi.json", "/metrics"):  # not in the document, keyed all the same
        assert httpx.get(served.base + hidden).status_code == 401, hidden
    assert httpx.get(served.base + "/healthz").status_code == 200


def test_raw_tokens_only_under_the_debug_setting_and_the_record_says_so(
    tmp_path: Path, real_embedder: Embedder, samples: dict[str, Path],
) -> None:
    settings = Settings(data_dir=tmp_path / "data", qdrant={"hold_open": False},
                        jobs={"mode": "inline"}, serve={"stream_raw_tokens": True})
    container = Container(settings, embedder=real_embedder)
    assert not container.ingestor.ingest([samples["public"]]).failed
    api = Api(container)
    try:
        key = container.users.add("dan", (), ("employee",))
        with _client(api, key) as http, http.stream(
                "POST", "/v1/chat", json={"question": LEAVE, "stream": True}) as r:
            events = _events(r)
        kinds = [k for k, _ in events]
        assert kinds.count("token") >= 1 and kinds[-1] == "answer"
        record = container.audit.get(events[-1][1]["audit_id"])
        assert record.body["streaming"] == "raw-tokens-debug"
    finally:
        api.stop()
        container.close()


class _FailingModel(FakeGenerator):
    """Writes one supported sentence, then the server goes away mid-answer."""

    def stream(self, messages: Any, max_tokens: int) -> Iterator[str]:
        yield from super().stream(messages, max_tokens)
        raise ModelError("the model server failed mid-answer: connection reset")


def test_a_model_error_mid_stream_is_an_error_event_and_a_failure_record(
    tmp_path: Path, real_embedder: Embedder, samples: dict[str, Path],
) -> None:
    model = _FailingModel("Every employee receives 28 days of paid leave per calendar year [1]. "
                          "Up to five unused days carry over [1]. And")
    settings = Settings(data_dir=tmp_path / "data", qdrant={"hold_open": False},
                        jobs={"mode": "inline"}, llm={"mode": "fake"})
    container = Container(settings, embedder=real_embedder, generator=model)
    assert not container.ingestor.ingest([samples["public"]]).failed
    api = Api(container)
    try:
        key = container.users.add("erin", (), ("employee",))
        with _client(api, key) as http, http.stream(
                "POST", "/v1/chat", json={"question": LEAVE, "stream": True}) as r:
            events = _events(r)
        kinds = [k for k, _ in events]
        assert kinds[-1] == "error" and "answer" not in kinds, kinds
        assert events[-1][1]["error"] == "unavailable"
        [record] = [r for r in container.audit.scan() if r.actor == "erin"]
        assert record.kind == "answer.failed" and record.body["error"] == "ModelError"
        shown = [data["text"] for kind, data in events if kind == "sentence"]
        assert record.body["shown"] == shown  # what the reader saw before it broke
    finally:
        api.stop()
        container.close()
