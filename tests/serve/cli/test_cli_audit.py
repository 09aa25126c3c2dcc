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
    env = {**cli_env, "ENCLAVE_ANSWER__MODE": "extractive",  # the model is not the subject
           "ENCLAVE_AUDIT__CHECKPOINT_EVERY_S": "86400"}  # checkpoints by count only
    assert _enclave(env, "ingest", str(samples["public"])).returncode == 0
    asked = _enclave(env, "ask", "How many days of paid leave do employees get?", "--user", "ann")
    assert asked.returncode == 0, asked.stderr
    assert "audit record 3 (" in asked.stderr  # after the first record's checkpoint (2)
    assert _enclave(env, "users", "add", "zoe", "--role", "auditor").returncode == 0
    assert _enclave(env, "users", "revoke", "zoe").returncode == 0

    listed = json.loads(_enclave(env, "audit", "list", "--json").stdout)["records"]
    assert [r["kind"] for r in listed] == ["user.revoked", "user.key_issued", "answer",
                                           "audit.checkpoint", "ingest.ran"]
    answer = listed[2]
    assert answer["actor"] == "ann" and answer["body"]["channel"] == "cli"
    assert "28 days" in answer["answer"] and answer["body"]["retrieved"]
    assert listed[1]["body"]["user"] == "zoe" and listed[1]["body"]["roles"] == ["auditor"]
    assert listed[3]["body"] == {"channel": "auto", "due": "first"}
    assert listed[4]["body"]["summary"]["ingested"] >= 1
    assert all(r["seal"] for r in listed)

    export = tmp_path / "audit.jsonl"
    assert _enclave(env, "audit", "export", "-o", str(export)).returncode == 0
    checkpoint = tmp_path / "checkpoint.json"
    assert _enclave(env, "audit", "checkpoint", "-o", str(checkpoint)).returncode == 0
    saved = json.loads(checkpoint.read_text())
    own = json.loads(_enclave(env, "audit", "list", "--limit", "1", "--json").stdout)["records"][0]
    assert own["kind"] == "audit.checkpoint" and own["seq"] == 7  # it covers its own record
    assert (saved["seq"], saved["hash"]) == (own["seq"], own["hash"]) and saved["signature"]
    in_file = (Path(env["ENCLAVE_DATA_DIR"]) / "audit" / "checkpoints.jsonl").read_text()
    assert [json.loads(line)["seq"] for line in in_file.splitlines()] == [2, 7]
    intact = _enclave(env, "audit", "verify", "--checkpoint", str(checkpoint))
    assert intact.returncode == 0 and intact.stdout.startswith("intact: 7 record(s)")
    assert "7 seal(s), 2 checkpoint(s)" in intact.stdout
    offline = _enclave(env, "audit", "verify", "--file", str(export))
    assert offline.returncode == 0 and "intact: 6 record(s)" in offline.stdout
    assert "6 seal(s)" in offline.stdout  # the key is known here: the export's seals hold

    table = _enclave(env, "audit", "export", "--format", "csv", "--user", "ann")
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert [r["kind"] for r in rows] == ["answer"] and rows[0]["refused"] == "false"

    database = Path(env["ENCLAVE_DATA_DIR"]) / "enclave.db"
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE audit_records SET question = 'What is the CEO''s salary?' "
                     "WHERE seq = 3")
    broken = _enclave(env, "audit", "verify")
    assert broken.returncode == 4, broken.stdout + broken.stderr
    assert broken.stdout.startswith(f"BROKEN at record 3 ({answer['record_id']}): record 3 was "
                                    "altered")
    as_json = json.loads(_enclave(env, "audit", "verify", "--json").stdout)
    assert as_json["intact"] is False and as_json["problems"][0]["seq"] == 3

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


def test_an_altered_kept_text_breaks_verify_and_is_marked_by_show(
    cli_env: dict[str, str], samples: dict[str, Path], tmp_path: Path
) -> None:
    env = {**cli_env, "ENCLAVE_ANSWER__MODE": "extractive"}
    assert _enclave(env, "ingest", str(samples["public"])).returncode == 0
    assert _enclave(env, "ask", "How many days of paid leave do employees get?").returncode == 0
    assert _enclave(env, "ask", "How many days of paid leave do employees get?").returncode == 0
    answers = json.loads(_enclave(env, "audit", "list", "--kind", "answer", "--json").stdout)
    first = answers["records"][-1]  # the oldest: the first record to retrieve the passage
    assert _enclave(env, "audit", "verify").returncode == 0

    database = Path(env["ENCLAVE_DATA_DIR"]) / "enclave.db"
    with sqlite3.connect(database) as conn:
        changed = conn.execute("UPDATE audit_texts SET text = replace(text, '28', '90') "
                               "WHERE text LIKE '%28 days%'").rowcount
    assert changed >= 1
    broken = _enclave(env, "audit", "verify")
    assert broken.returncode == 4, broken.stdout + broken.stderr
    assert broken.stdout.startswith(f"BROKEN at record {first['seq']} ({first['record_id']}): "
                                    "the kept text of chunk ")
    assert "was altered" in broken.stdout.splitlines()[0]

    shown = _enclave(env, "audit", "show", first["record_id"])
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    altered = [p for p in detail["passages"] if p["intact"] is False]
    assert altered and all("90 days" in p["text"] for p in altered)
    assert all(p["intact"] is True for p in detail["passages"] if p not in altered)
    assert detail["check"]["texts_intact"] is False and detail["check"]["sealed"] is True
    assert "ALTERED" in shown.stderr


def test_keygen_writes_a_key_once_and_rotation_keeps_old_seals_verifiable(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    made = _enclave(cli_env, "audit", "keygen", "--key-id", "2026-q1", "--output",
                    str(keys / "q1.key"))
    assert made.returncode == 0, made.stderr
    q1_public = json.loads(made.stdout)
    assert q1_public["key_id"] == "2026-q1" and q1_public["public_key"]
    assert (keys / "q1.key").stat().st_mode & 0o777 == 0o600
    again = _enclave(cli_env, "audit", "keygen", "--key-id", "2026-q1", "--output",
                     str(keys / "q1.key"))
    assert again.returncode == 2 and "never overwritten" in again.stderr
    assert json.loads((keys / "q1.key").read_text())["key_id"] == "2026-q1"
    bad = _enclave(cli_env, "audit", "keygen", "--key-id", "a:b", "--output", str(keys / "x"))
    assert bad.returncode == 2

    q1 = {**cli_env, "ENCLAVE_AUDIT__SEAL_KEY_FILE": str(keys / "q1.key")}
    assert json.loads(_enclave(q1, "audit", "pubkey").stdout) == q1_public
    assert _enclave(q1, "audit", "purge").returncode == 0  # a record, sealed by 2026-q1
    export = tmp_path / "q1.jsonl"
    assert _enclave(q1, "audit", "export", "-o", str(export)).returncode == 0

    assert _enclave(cli_env, "audit", "keygen", "--key-id", "2026-q2", "--output",
                    str(keys / "q2.key")).returncode == 0
    q2 = {**cli_env, "ENCLAVE_AUDIT__SEAL_KEY_FILE": str(keys / "q2.key")}
    unknown = _enclave(q2, "audit", "verify")
    assert unknown.returncode == 4 and "unknown key '2026-q1'" in unknown.stdout
    (keys / "public.jsonl").write_text(json.dumps(q1_public) + "\n")
    rotated = {**q2, "ENCLAVE_AUDIT__SEAL_PUBLIC_KEYS_FILE": str(keys / "public.jsonl")}
    assert _enclave(rotated, "audit", "purge").returncode == 0  # sealed by 2026-q2
    verified = _enclave(rotated, "audit", "verify")
    assert verified.returncode == 0, verified.stdout
    # An auditor with the public keys alone checks an export's seals.
    offline = _enclave(cli_env, "audit", "verify", "--file", str(export), "--public-keys",
                       str(keys / "public.jsonl"))
    assert offline.returncode == 0 and "3 seal(s)" in offline.stdout


def test_audit_list_and_export_filter_by_feedback(cli_env: dict[str, str]) -> None:
    from core.audit import ANSWER, Event
    from core.container import Container
    from core.feedback import give_feedback
    from core.settings import Settings
    from core.types import Principal

    container = Container(Settings(data_dir=Path(cli_env["ENCLAVE_DATA_DIR"])))
    try:
        ids = []
        for user in ("ann", "ann", "bo"):
            body = {"principal": {"user_id": user, "groups": [], "roles": ["employee"]}}
            ids.append(container.audit.append(Event(ANSWER, user, body, question=f"q {user}?",
                                                    answer="a.", refused=False)).record_id)
        give_feedback(container.audit, Principal("ann"), ids[0], "down", "wrong", "test")
        give_feedback(container.audit, Principal("bo"), ids[2], "up", None, "test")
    finally:
        container.close()

    def listed(*args: str) -> list[str]:
        run = _enclave(cli_env, "audit", "list", "--json", *args)
        assert run.returncode == 0, run.stderr
        return [r["record_id"] for r in json.loads(run.stdout)["records"]]

    assert listed("--feedback", "down") == [ids[0]]
    assert listed("--feedback", "up") == [ids[2]]
    assert listed("--feedback", "any") == [ids[2], ids[0]]
    assert listed("--feedback", "none") == [ids[1]]
    text = _enclave(cli_env, "audit", "list", "--feedback", "any").stdout
    assert "rated up" in text and "rated down" in text
    exported = _enclave(cli_env, "audit", "export", "--feedback", "down", "--user", "ann")
    assert exported.returncode == 0, exported.stderr
    assert [json.loads(line)["record_id"] for line in exported.stdout.splitlines()] == [ids[0]]
    bogus = _enclave(cli_env, "audit", "list", "--feedback", "sideways")
    assert bogus.returncode == 2 and "--feedback" in bogus.stderr
