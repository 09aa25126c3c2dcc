"""`enclave sources`: add, check, sync (by name and --due, as cron runs it, with no broker),
show, list, remove; clear refusals with exit 2 and no stack trace; credentials never
printed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import ENCLAVE
from tests.workers.conftest import write_texts


def _enclave(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ENCLAVE), *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_a_folder_source_from_add_to_remove(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "ENCLAVE_JOBS__MODE": "inline", "SHARE_PASSWORD": "s3cret-never-shown"}
    share = tmp_path / "share"
    for path in write_texts(share, 3):
        path.chmod(0o644)
    (share / "locked.txt").write_text("Only root reads this.")
    (share / "locked.txt").chmod(0o600)

    refused = {
        ("--kind", "folder", "--location", str(share)): "needs a mapping",
        ("--kind", "web", "--location", "http://127.0.0.1:9/"): "needs groups",
        ("--kind", "ftp", "--location", "x"): "one of folder, smb, imap, web",
        ("--kind", "folder", "--location", str(share), "--map", "other=@public",
         "--credentials", "s3cret"): "never the password itself",
        ("--kind", "folder", "--location", str(share), "--map", "other=@public",
         "--every", "1s"): "at most once a minute",
    }
    for args, why in refused.items():
        run = _enclave(env, "sources", "add", "memos", *args)
        assert run.returncode == 2 and why in " ".join(run.stderr.split()), (args, run.stderr)
        assert "Traceback" not in run.stderr

    added = _enclave(env, "sources", "add", "memos", "--kind", "folder", "--location", str(share),
                     "--map", "other=@public", "--every", "1h", "--credentials", "env:SHARE_PASSWORD")
    assert added.returncode == 0, added.stderr
    check = json.loads(_enclave(env, "sources", "check", "memos", "--json").stdout)
    assert check["documents"] == 4 and check["not_ingested_unmapped"] == 1
    assert list(check["unmapped_principals"]) == ["user:root"]

    due = _enclave(env, "sources", "sync", "--due", "--json")
    assert due.returncode == 0, due.stderr
    [job] = json.loads(due.stdout)
    assert job["status"] == "done" and job["counts"]["done"] == 3 and job["counts"]["failed"] == 1
    again = _enclave(env, "sources", "sync", "--due")
    assert again.returncode == 0 and "no source is due" in again.stdout

    waited = _enclave(env, "sources", "sync", "memos", "--wait")
    assert waited.returncode == 3  # the unmapped file fails each time, with its reason
    shown = json.loads(_enclave(env, "sources", "show", "memos", "--json").stdout)
    assert shown["entries"] == 4 and shown["last_job"]["counts"]["unchanged"] == 3
    assert shown["credentials"] == "env:SHARE_PASSWORD"
    listed = _enclave(env, "sources", "list")
    assert "memos" in listed.stdout and "every 1h" in listed.stdout
    for run in (added, listed, waited, due):
        assert "s3cret-never-shown" not in run.stdout + run.stderr

    edited = _enclave(env, "sources", "edit", "memos", "--map", "other=@public",
                      "--map", "user:root=admins", "--every", "off")
    assert edited.returncode == 0, edited.stderr
    synced = _enclave(env, "sources", "sync", "memos", "--wait", "--json")
    assert synced.returncode == 0, synced.stdout  # the owner is mapped now: nothing fails
    assert json.loads(synced.stdout)["counts"]["done"] == 1
    assert _enclave(env, "sources", "edit", "memos").returncode == 2
    assert _enclave(env, "search", "memo", "--json").returncode == 0
    removed = _enclave(env, "sources", "remove", "memos")
    assert removed.returncode == 0 and "4 documents deleted" in removed.stdout
    missing = _enclave(env, "sources", "show", "memos")
    assert missing.returncode == 2 and "no source named memos" in missing.stderr
