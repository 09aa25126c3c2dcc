"""Every exit of an answer goes through the one AnswerService, and withholds what it must.

A fault is planted between the two access checks: the handbook's groups are changed in the
registry (finance only) but not in the store, so the search, which filters in the store,
still hands it to anyone. The service's own check, against the registry, must stop every
answer citing it before a word of it leaves: the plain and streamed chat route, the
OpenAI-compatible route plain and streamed, `enclave ask` and `enclave chat`. Each exit
leaves an `answer.withheld` record naming its channel; no event or line of output holds
the handbook's text.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.audit import Filters
from core.container import Container
from core.ports import Embedder
from core.settings import Settings
from tests.conftest import ENCLAVE
from tests.serve.conftest import Api

LEAVE = "How many days of paid leave do employees get?"
LEAKED = "28 days"  # the handbook's answer: must not leave


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory, real_embedder: Embedder,
            samples: dict[str, Path]) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("every-exit")
    settings = Settings(data_dir=root / "data", qdrant={"hold_open": False},
                        jobs={"mode": "inline"}, answer={"mode": "extractive"},
                        serve={"rate_per_minute": 10_000})
    container = Container(settings, embedder=real_embedder)
    assert not container.ingestor.ingest([samples["public"]]).failed
    handbook = next(d for d in container.registry.documents() if d.source.endswith("handbook.md"))
    container.registry.set_groups(handbook.doc_id, ("finance",))  # the store still says public
    api = Api(container)
    api.key = container.users.add("walt", (), ("employee",))  # type: ignore[attr-defined]
    yield api
    api.stop()
    container.close()


def _withheld(api: Api, channel: str) -> int:
    records = api.container.audit.records(Filters(kind="answer.withheld"), 500)
    return sum(r.body["channel"] == channel for r in records)


def test_http_exits_withhold_and_record(planted: Api) -> None:
    headers = {"Authorization": f"Bearer {planted.key}"}  # type: ignore[attr-defined]
    with httpx.Client(base_url=planted.base, headers=headers, timeout=120) as http:
        plain = http.post("/v1/chat", json={"question": LEAVE})
        assert plain.status_code == 500 and plain.json()["error"] == "withheld", plain.text
        streamed = http.post("/v1/chat", json={"question": LEAVE, "stream": True})
        events = [line for line in streamed.text.splitlines() if line.startswith("event:")]
        assert events == ["event: error"], streamed.text  # not one sentence went out
        openai = http.post("/v1/chat/completions",
                           json={"messages": [{"role": "user", "content": LEAVE}]})
        assert openai.status_code == 500, openai.text
        openai_stream = http.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": LEAVE}], "stream": True})
        assert '"withheld"' in openai_stream.text
        for response in (plain, streamed, openai, openai_stream):
            assert LEAKED not in response.text and "handbook" not in response.text
    assert _withheld(planted, "api") == 2 and _withheld(planted, "openai") == 2
    # An unaffected question still gets its answer.
    with httpx.Client(base_url=planted.base, headers=headers, timeout=120) as http:
        fine = http.post("/v1/chat", json={"question": "How long must passwords be?"})
        assert fine.status_code == 200 and fine.json()["outcome"] == "answered", fine.text


def test_cli_exits_withhold_and_record(planted: Api, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "ENCLAVE_DATA_DIR": str(planted.container.settings.data_dir),
           "ENCLAVE_ANSWER__MODE": "extractive", "ENCLAVE_QDRANT__HOLD_OPEN": "false"}
    ask = subprocess.run([str(ENCLAVE), "ask", LEAVE, "--user", "vera", "--json"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert ask.returncode == 1 and "withheld" in ask.stderr, (ask.stdout, ask.stderr)
    assert LEAKED not in ask.stdout + ask.stderr
    chat = subprocess.run([str(ENCLAVE), "chat", "--user", "vera"], env=env, input=f"{LEAVE}\n",
                          capture_output=True, text=True, timeout=300)
    assert chat.returncode == 1 and "withheld" in chat.stderr, (chat.stdout, chat.stderr)
    assert LEAKED not in chat.stdout + chat.stderr
    records = planted.container.audit.records(Filters(kind="answer.withheld", user="vera"), 10)
    assert [r.body["channel"] for r in records] == ["cli", "cli"]
    assert all(json.dumps(r.body).count(LEAKED) == 0 for r in records)
