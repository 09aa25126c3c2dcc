"""The everyday commands load only what they use (issue 22, a CLI that starts at once).

Each command runs as a user runs it, in a fresh process, on a small data dir ingested with
the int8 embedder; the process writes the modules it imported as it exits. Times are not
asserted (this machine is shared and noisy): `enclave bench cli` reports them. What is
asserted is what makes them: no PyTorch, no transformers, no parser, no chunker, for
commands that neither embed with PyTorch nor parse; and, so that the check cannot pass
because a command did nothing, the modules each one must have used to do its work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ENCLAVE, REPO

# Calls the CLI's own entry point, then writes sys.modules to the file named first.
_RECORDING = """
import atexit, json, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv[0] = "enclave"
from serve.cli.main import main
main()
"""
TORCH = {"torch", "transformers", "sentence_transformers"}
# What NLTK imports for features the stemmer does not use (retrieval/sparse.py): 1.3 s.
HEAVY = {"sklearn", "scipy", "pandas"}
# Parsing and chunking: the ingestor's, which none of these commands builds.
PARSING = {"ingest.pipeline", "ingest.parse", "ingest.chunk", "llama_index", "unstructured"}

HANDBOOK = """\
# Northwind handbook

## Paid leave

Every employee receives 28 days of paid leave per calendar year.
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("cold-start")
    (root / "docs").mkdir()
    (root / "docs" / "handbook.md").write_text(HANDBOOK, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env |= {"ENCLAVE_DATA_DIR": str(root / "data"), "ENCLAVE_EMBEDDING__MODE": "onnx-int8",
            # Made by `make install`; exported here on first use when it was not.
            "ENCLAVE_EMBEDDING__CACHE_DIR": str(root / "models")}
    for args in (["ingest", str(root / "docs")], ["users", "add", "alice", "-g", "hr"]):
        done = subprocess.run([str(ENCLAVE), *args], env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr
    return env


def run_recorded(env: dict[str, str], tmp_path: Path, *args: str
                 ) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    modules = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", _RECORDING, str(modules), *args], env=env,
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return done, set(json.loads(modules.read_text()))


def _status(data: dict[str, Any]) -> None:
    assert data["documents"] == 1 and data["chunks"] == data["stored_chunks"] > 0
    assert data["disagreements"] == []


def _search(data: dict[str, Any]) -> None:
    assert data["results"][0]["source"].endswith("handbook.md")


def _users(data: dict[str, Any]) -> None:
    assert [u["user_id"] for u in data["users"]] == ["alice"]


def _jobs(data: dict[str, Any]) -> None:
    assert data["jobs"] == []


def _audit(data: dict[str, Any]) -> None:
    assert {"ingest.ran", "user.key_issued"} <= {r["kind"] for r in data["records"]}


@pytest.mark.parametrize(("args", "used", "check"), [
    (["status"], {"qdrant_edge", "core.registry", "ingest.upkeep"}, _status),
    (["search", "how many days of paid leave"],
     {"onnxruntime", "tokenizers", "ingest.embed_onnx", "qdrant_edge", "retrieval.search"},
     _search),
    (["users", "list"], {"core.users", "sqlalchemy"}, _users),
    (["jobs", "list"], {"core.jobs", "sqlalchemy"}, _jobs),
    (["audit", "list"], {"core.audit", "sqlalchemy"}, _audit),
], ids=["status", "search", "users-list", "jobs-list", "audit-list"])
def test_loads_only_what_it_uses(env: dict[str, str], tmp_path: Path, args: list[str],
                                 used: set[str], check: Any) -> None:
    done, modules = run_recorded(env, tmp_path, *args, "--json")
    check(json.loads(done.stdout))
    assert used <= modules, f"did not load {sorted(used - modules)}: did it do its work?"
    assert not PARSING & modules, f"{args[0]} loaded the parsers: {sorted(PARSING & modules)}"
    loaded = (TORCH | HEAVY) & modules
    assert not loaded, f"{' '.join(args)} imported {sorted(loaded)}"


def test_help_lists_every_command_without_opening_anything(env: dict[str, str],
                                                           tmp_path: Path) -> None:
    done, modules = run_recorded(env, tmp_path, "--help")
    for name in ("ingest", "search", "ask", "status", "serve", "jobs", "users", "audit",
                 "sources", "golden", "eval", "bench", "db", "health"):
        assert f" {name} " in done.stdout, name
    assert "typer" in modules
    # Listing the commands needs none of their dependencies: no database, no settings.
    assert not {"sqlalchemy", "pydantic_settings", "numpy"} & modules
    assert not TORCH & modules
