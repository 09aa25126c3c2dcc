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
