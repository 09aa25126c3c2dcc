"""`enclave jobs` errors: clear messages and exit codes, no stack traces, nothing left hanging."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import ENCLAVE
from tests.workers.conftest import write_texts


def _enclave(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ENCLAVE), *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_broker_that_is_down_fails_the_submit_clearly(cli_env: dict[str, str], tmp_path: Path):
    env = {**cli_env, "ENCLAVE_JOBS__BROKER_URL": "redis://127.0.0.1:9/0"}  # nothing listens
    write_texts(tmp_path / "docs", 1)
    run = _enclave(env, "jobs", "submit", str(tmp_path / "docs"))
    assert run.returncode == 1 and run.stdout == ""
    assert "unavailable: the job broker at redis://127.0.0.1:9/0 is unreachable" in run.stderr
    assert "Traceback" not in run.stderr
    listed = json.loads(_enclave(env, "jobs", "list", "--json").stdout)["jobs"]
    assert [j["status"] for j in listed] == ["cancelled"]
    assert listed[0]["error"].startswith("not started: the job broker")


def test_usage_errors_exit_2(cli_env: dict[str, str], tmp_path: Path) -> None:
    missing = _enclave(cli_env, "jobs", "submit", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
    unknown = _enclave(cli_env, "jobs", "status", "no-such-job")
    assert unknown.returncode == 2 and "no job 'no-such-job'" in unknown.stderr
    write_texts(tmp_path / "docs", 1)
    bad_group = _enclave(cli_env, "jobs", "submit", str(tmp_path / "docs"), "--group", "a b")
    assert bad_group.returncode == 2 and "invalid group name" in bad_group.stderr
    not_folder = _enclave(cli_env, "jobs", "submit", str(tmp_path / "docs" / "memo-000.txt"),
                          "--sync")
    assert not_folder.returncode == 2 and "--sync works on folders" in not_folder.stderr


def test_users_add_list_revoke(cli_env: dict[str, str]) -> None:
    from core.container import Container
    from core.settings import Settings

    added = _enclave(cli_env, "users", "add", "dana@example.com", "--group", "hr", "--group",
                     "legal", "--role", "auditor")
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip().splitlines()[-1]
    assert key.startswith("enc_") and len(key) > 40
    listed = json.loads(_enclave(cli_env, "users", "list", "--json").stdout)["users"]
    assert listed == [{"user_id": "dana@example.com", "groups": ["hr", "legal"],
                       "roles": ["auditor"], "keys": [key[:10]], "revoked": False}]
    container = Container(Settings(data_dir=Path(cli_env["ENCLAVE_DATA_DIR"])))
    try:
        principal = container.users.authenticate(key)
        assert principal is not None and principal.groups == ("hr", "legal")
        # Only the digest is stored: the key itself is nowhere in the database.
        with container.database.engine.connect() as conn:
            from sqlalchemy import text

            stored = conn.execute(text("SELECT key_sha256, shown FROM api_keys")).one()
        assert key not in stored and stored.shown == key[:10]

        revoked = _enclave(cli_env, "users", "revoke", "dana@example.com")
        assert revoked.returncode == 0 and "1 active key" in revoked.stdout
        assert container.users.authenticate(key) is None
    finally:
        container.close()
    bad_role = _enclave(cli_env, "users", "add", "eve", "--role", "root")
    assert bad_role.returncode == 2 and "unknown role" in bad_role.stderr
    unknown = _enclave(cli_env, "users", "revoke", "nobody")
    assert unknown.returncode == 2 and "no user 'nobody'" in unknown.stderr
    # The rule the admin console follows holds here too: the last admin stays one.
    assert _enclave(cli_env, "users", "add", "root", "--role", "admin").returncode == 0
    for args in (["revoke", "root"], ["add", "root", "--role", "employee"]):
        last = _enclave(cli_env, "users", *args)
        assert last.returncode == 2 and "root is the last admin" in last.stderr, args
