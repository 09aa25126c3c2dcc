"""`enclave ingest` and `enclave serve` as run in production: JSON logs, at DEBUG, and no
question or document text in them unless ENCLAVE_LOG__CONTENT says so.

The content-on run is the control: the same requests then do put the question in the log,
so the content-off run's silence is the setting's doing, not an accident of what is logged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from core.container import Container
from core.settings import Settings
from tests.conftest import ENCLAVE, free_port, wait_for_http

SECRET = "The hangar access phrase is VIOLET HERON THIRTYONE and it rotates every quarter."
QUESTION = "What is the hangar access phrase, asked by PELICAN?"
MARKERS = ("VIOLET", "HERON", "PELICAN", "hangar")


def _json_lines(text: str) -> list[dict]:
    records = []
    for line in text.splitlines():
        if line.strip():
            records.append(json.loads(line))  # every line is one JSON object
    return records


@pytest.mark.parametrize("content", [False, True], ids=["content-off", "content-on"])
def test_production_logs_are_json_and_hold_no_content(
    tmp_path: Path, cli_env: dict[str, str], content: bool
) -> None:
    env = {**cli_env, "ENCLAVE_LOG__FORMAT": "json", "ENCLAVE_LOG__LEVEL": "DEBUG",
           "ENCLAVE_LOG__CONTENT": str(content).lower(), "ENCLAVE_JOBS__MODE": "inline",
           "ENCLAVE_ANSWER__MODE": "extractive"}
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "hangar.md").write_text(f"# Hangar\n\n{SECRET}\n", encoding="utf-8")
    ingest = subprocess.run([str(ENCLAVE), "ingest", str(docs)], env=env, capture_output=True,
                            text=True, timeout=300)
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    ingest_logs = _json_lines(ingest.stderr)

    container = Container(Settings(data_dir=Path(env["ENCLAVE_DATA_DIR"])))
    key = container.users.add("pia", (), ("employee",))
    container.close()
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen([str(ENCLAVE), "serve", "--port", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=log_file, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc, timeout_s=120)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120,
                          headers={"Authorization": f"Bearer {key}"}) as http:
            asked = http.post("/v1/chat", json={"question": QUESTION},
                              headers={"X-Request-ID": "req-one"})
            assert asked.status_code == 200, asked.text
            assert "VIOLET" in asked.json()["answer"]  # the answer itself does carry it
            streamed = http.post("/v1/chat", json={"question": QUESTION, "stream": True},
                                 headers={"X-Request-ID": "req-two"})
            assert streamed.status_code == 200
            assert 400 <= http.post("/v1/chat", json={"question": "x" * 5000}).status_code < 500
        # The container's health check: ready (store, database, model) means exit 0.
        health = subprocess.run([str(ENCLAVE), "health", "api"], capture_output=True, text=True,
                                env={**env, "ENCLAVE_SERVE__PORT": str(port)}, timeout=60)
        assert health.returncode == 0 and '"ready"' in health.stdout, health.stderr
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    serve_logs = _json_lines(log_path.read_text())

    access = [r for r in serve_logs if r.get("logger") == "serve.access"]
    assert {r["request_id"] for r in access} >= {"req-one", "req-two"}
    answered = [r for r in serve_logs
                if r.get("logger") == "serve.answering.answerer" and r["level"] == "INFO"]
    assert {r["request_id"] for r in answered} == {"req-one", "req-two"}
    everything = json.dumps(ingest_logs + serve_logs)
    if content:
        assert "PELICAN" in everything and "VIOLET" in everything
    else:
        leaks = [r for r in ingest_logs + serve_logs if any(m in json.dumps(r) for m in MARKERS)]
        assert not leaks, leaks
        assert "chars withheld" in everything
