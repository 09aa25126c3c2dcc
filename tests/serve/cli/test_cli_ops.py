"""`enclave db ...`, `enclave health ...` and production's refusal of placeholder secrets."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import ENCLAVE, free_port


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ENCLAVE), *args], env=env, capture_output=True, text=True, timeout=120)


def test_db_status_and_upgrade_on_a_new_database(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "ENCLAVE_DATABASE_MIGRATE": "verify"}
    before = _run(env, "db", "status", "--json")
    assert before.returncode == 1
    assert json.loads(before.stdout) == {"current": None, "head": "0011", "up_to_date": False}
    refused = _run(env, "status")
    assert refused.returncode == 1 and "run `enclave db upgrade` first" in refused.stderr
    upgraded = _run(env, "db", "upgrade")
    assert upgraded.returncode == 0 and "revision 0011" in upgraded.stdout, upgraded.stderr
    assert _run(env, "db", "upgrade").returncode == 0  # idempotent
    assert _run(env, "db", "status").returncode == 0
    assert _run(env, "status", "--json").returncode == 0


def test_health_api_fails_when_nothing_answers(cli_env: dict[str, str]) -> None:
    down = _run(cli_env, "health", "api", "--url", f"http://127.0.0.1:{free_port()}/readyz",
                "--timeout", "2")
    assert down.returncode == 1 and down.stderr.startswith("unhealthy:")


def test_health_worker_without_a_worker_is_unhealthy(cli_env: dict[str, str]) -> None:
    result = _run(cli_env, "health", "worker")
    assert result.returncode == 1 and "has beaten yet" in result.stderr


def test_production_refuses_placeholders_without_echoing_them(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "ENCLAVE_ENV": "production", "ENCLAVE_QDRANT__URL": "http://127.0.0.1:9",
           "ENCLAVE_QDRANT__API_KEY": "change-me-qdrant-key", "ENCLAVE_JOBS__MODE": "inline"}
    for args in (("status",), ("serve",), ("db", "upgrade")):
        result = _run(env, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("configuration error:")
        assert "ENCLAVE_QDRANT__API_KEY" in result.stderr
        assert "change-me-qdrant-key" not in result.stderr and "Traceback" not in result.stderr
