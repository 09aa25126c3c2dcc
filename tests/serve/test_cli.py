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
