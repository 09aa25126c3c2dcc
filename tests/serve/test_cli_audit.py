"""`enclave audit` on the embedded SQLite database: what the CLI records, exports and verifies."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
from pathlib import Path

from tests.conftest import ENCLAVE


def _enclave(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ENCLAVE), *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_cli_actions_are_recorded_exported_and_verified(
    cli_env: dict[str, str], samples: dict[str, Path], tmp_path: Path
) -> None:
    env = {**cli_env, "ENCLAVE_ANSWER__MODE": "extractive"}  # the model is not the subject here
    assert _enclave(env, "ingest", str(samples["public"])).returncode == 0
    asked = _enclave(env, "ask", "How many days of paid leave do employees get?", "--user", "ann")
    assert asked.returncode == 0, asked.stderr
    assert "audit record 2 (" in asked.stderr
    assert _enclave(env, "users", "add", "zoe", "--role", "auditor").returncode == 0
    assert _enclave(env, "users", "revoke", "zoe").returncode == 0

    listed = json.loads(_enclave(env, "audit", "list", "--json").stdout)["records"]
    assert [r["kind"] for r in listed] == ["user.revoked", "user.key_issued", "answer",
                                           "ingest.ran"]
    answer = listed[2]
    assert answer["actor"] == "ann" and answer["body"]["channel"] == "cli"
    assert "28 days" in answer["answer"] and answer["body"]["retrieved"]
    assert listed[1]["body"]["user"] == "zoe" and listed[1]["body"]["roles"] == ["auditor"]
    assert listed[3]["body"]["summary"]["ingested"] >= 1

    export = tmp_path / "audit.jsonl"
    assert _enclave(env, "audit", "export", "-o", str(export)).returncode == 0
    checkpoint = tmp_path / "checkpoint.json"
    assert _enclave(env, "audit", "checkpoint", "-o", str(checkpoint)).returncode == 0
    assert json.loads(checkpoint.read_text())["seq"] == 5  # before its own record (6)
    intact = _enclave(env, "audit", "verify", "--checkpoint", str(checkpoint))
    assert intact.returncode == 0 and intact.stdout.startswith("intact: 6 record(s)")
    offline = _enclave(env, "audit", "verify", "--file", str(export))
    assert offline.returncode == 0 and "intact: 5 record(s)" in offline.stdout

    table = _enclave(env, "audit", "export", "--format", "csv", "--user", "ann")
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert [r["kind"] for r in rows] == ["answer"] and rows[0]["refused"] == "false"

    database = Path(env["ENCLAVE_DATA_DIR"]) / "enclave.db"
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE audit_records SET question = 'What is the CEO''s salary?' "
                     "WHERE seq = 2")
    broken = _enclave(env, "audit", "verify")
    assert broken.returncode == 4, broken.stdout + broken.stderr
    assert broken.stdout.startswith(f"BROKEN at record 2 ({answer['record_id']}): record 2 was "
                                    "altered")
    as_json = json.loads(_enclave(env, "audit", "verify", "--json").stdout)
    assert as_json["intact"] is False and as_json["problems"][0]["seq"] == 2

    lines = export.read_text().splitlines()
    edited = json.loads(lines[0])
    edited["actor"] = "someone-else"
    export.write_text("\n".join([json.dumps(edited), *lines[1:]]) + "\n")
    assert _enclave(env, "audit", "verify", "--file", str(export)).returncode == 4
    not_export = _enclave(env, "audit", "verify", "--file", str(checkpoint))
    assert not_export.returncode == 2 and "not an audit export" in not_export.stderr


def test_delete_for_legal_reasons_purges_kept_texts(
    cli_env: dict[str, str], samples: dict[str, Path]
) -> None:
    env = {**cli_env, "ENCLAVE_ANSWER__MODE": "extractive"}
    assert _enclave(env, "ingest", str(samples["public"])).returncode == 0
    assert _enclave(env, "ask", "How many days of paid leave do employees get?").returncode == 0
    handbook = str(samples["public"] / "handbook.md")
    plain = _enclave(env, "delete", handbook, "--legal-reason", "erasure request 9", "--json")
    assert plain.returncode == 0, plain.stderr
    deleted = json.loads(plain.stdout)
    assert deleted["texts_purged"] >= 1
    # Already gone from the index, but a second legal deletion still finds nothing kept.
    again = _enclave(env, "delete", deleted["deleted"], "--legal-reason", "erasure request 9")
    assert again.returncode == 0 and "0 kept text(s) purged" in again.stdout
    unknown = _enclave(env, "delete", "no-such-doc", "--legal-reason", "x" * 5)
    assert unknown.returncode == 2
    events = json.loads(_enclave(env, "audit", "list", "--kind", "document.legal_deletion",
                                 "--json").stdout)["records"]
    assert [e["body"]["reason"] for e in events] == ["erasure request 9"] * 2
    assert _enclave(env, "audit", "verify").returncode == 0
