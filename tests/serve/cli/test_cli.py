"""The CLI contract of DESIGN.md, through the installed ``enclave`` command."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import ENCLAVE


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ENCLAVE), *args], env=env, capture_output=True, text=True,
                          timeout=600)


def test_ingest_search_status_delete(samples, cli_env, tmp_path: Path):
    done = run(cli_env, "ingest", str(samples["finance"]), "--group", "finance", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["summary"]["ingested"] == 2 and report["summary"]["failed"] == 0

    hits = json.loads(run(cli_env, "search", "hotel limit per night", "-g", "finance", "-k", "2",
                          "--json").stdout)["results"]
    assert hits and hits[0]["source"].endswith("expense-policy.pdf")
    assert {"doc_id", "version", "page_start", "char_start", "score", "text"} <= set(hits[0])
    outsider = json.loads(run(cli_env, "search", "hotel limit per night", "--user", "eve",
                              "--json").stdout)
    assert outsider["results"] == []

    plain = run(cli_env, "search", "hotel limit per night", "-g", "finance")
    assert "expense-policy.pdf" in plain.stdout and "page 1" in plain.stdout

    status = json.loads(run(cli_env, "status", "--json").stdout)
    assert status["documents"] == 2 and status["chunks"] == status["stored_chunks"] > 0
    assert status["disagreements"] == [] and status["failures"] == []

    gone = run(cli_env, "delete", hits[0]["doc_id"])
    assert gone.returncode == 0
    status = json.loads(run(cli_env, "status", "--json").stdout)
    assert status["documents"] == 1


def test_exit_codes(samples, cli_env, tmp_path: Path):
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4 this is not a pdf at all")
    good = tmp_path / "note.txt"
    good.write_text("The lab opens at eight in the morning.")
    partial = run(cli_env, "ingest", str(bad), str(good))
    assert partial.returncode == 3
    assert "FAILED" in partial.stdout and "broken.pdf" in partial.stdout
    assert "1 ingested" in partial.stdout and "1 failed" in partial.stdout

    assert run(cli_env, "ingest").returncode == 2  # no path: usage error
    assert run(cli_env, "ingest", str(good), "--group", "*").returncode == 2
    assert run(cli_env, "search", "   ").returncode == 2
    assert run(cli_env, "search", "x", "-k", "0").returncode == 2
    missing = run(cli_env, "delete", "no-such-document")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    bad_mode = run(cli_env, "bench", "ingest", str(good), "--profile", "fp16")
    assert bad_mode.returncode == 2 and "unknown profile(s)" in bad_mode.stderr


def test_ask_prints_a_cited_answer_in_the_contract_shape(samples, cli_env):
    assert run(cli_env, "ingest", str(samples["finance"]), "--group", "finance").returncode == 0
    # Extractive mode: deterministic, no model; the generative path is tested with the
    # real model in test_llm_local and through a real server in test_llm_openai.
    env = {**cli_env, "ENCLAVE_ANSWER__MODE": "extractive"}
    done = run(env, "ask", "What is the hotel limit per night?", "-g", "finance", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert set(answer) == {"answer", "outcome", "refused", "citations", "model", "timings"}
    assert answer["outcome"] == "answered" and not answer["refused"]
    assert "180 euros" in answer["answer"]
    citation = answer["citations"][0]
    assert set(citation) == {"n", "doc_id", "version", "source", "page", "quote", "start", "end",
                             "supported", "ocr"}
    assert citation["ocr"] is False  # the PDF's own text layer, not OCR
    assert citation["source"].endswith("expense-policy.pdf")
    assert citation["page"] == 1 and citation["supported"]
    assert citation["end"] - citation["start"] == len(citation["quote"])

    outsider = json.loads(run(env, "ask", "What is the hotel limit per night?", "--json").stdout)
    assert outsider["outcome"] == "not_found" and outsider["refused"]
    assert outsider["citations"] == []
    assert "expense" not in json.dumps(outsider)

    plain = run(env, "ask", "What is the hotel limit per night?", "-g", "finance")
    assert "[1]" in plain.stdout and "Sources:" in plain.stdout
    assert "expense-policy.pdf, page 1" in plain.stdout


def test_ask_errors_are_one_line_and_exit_codes(cli_env):
    empty = run(cli_env, "ask", "  ")
    assert empty.returncode == 2 and "question is empty" in empty.stderr
    huge = run(cli_env, "ask", "why " * 1000)
    assert huge.returncode == 2 and "limit is 2000" in huge.stderr
    # A model server that is down: exit 1 with the reason, no stack trace, no answer.
    down = {**cli_env, "ENCLAVE_LLM__BASE_URL": "http://127.0.0.1:9/v1", "ENCLAVE_LLM__TIMEOUT_S": "5"}
    note = Path(cli_env["ENCLAVE_DATA_DIR"]).parent / "note.txt"
    note.write_text("The lab opens at eight in the morning on weekdays.")
    assert run(down, "ingest", str(note)).returncode == 0
    failed = run(down, "ask", "When does the lab open on weekdays?")
    assert failed.returncode == 1, failed.stdout
    assert "unavailable: the model server" in failed.stderr and "Traceback" not in failed.stderr
    assert failed.stdout == ""


def test_chat_reads_a_follow_up_in_the_light_of_the_conversation(samples, cli_env):
    assert run(cli_env, "ingest", str(samples["finance"]), "--group", "finance").returncode == 0
    env = {**cli_env, "ENCLAVE_ANSWER__MODE": "extractive"}
    done = subprocess.run(
        [str(ENCLAVE), "chat", "-g", "finance"],
        input="What does the travel policy say about hotels?\n\nAnd what about meals?\n",
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.split("\n\n", 1)
    assert "180 euros" in first
    assert "(read as: What does the travel policy say about hotels? And what about meals?)" in second
    assert "60 euros per day" in second
