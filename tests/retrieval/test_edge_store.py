from __future__ import annotations

import subprocess
from pathlib import Path

from retrieval.edge_store import EdgeStore
from tests.conftest import ENCLAVE


def test_a_second_process_gets_a_clear_message_while_the_store_is_held(cli_env, tmp_path: Path):
    data = Path(cli_env["ENCLAVE_DATA_DIR"])
    held = EdgeStore(data / "qdrant-edge" / "enclave")
    held.ensure_collection(384)
    try:
        env = {**cli_env, "ENCLAVE_QDRANT__LOCK_WAIT_S": "0.5"}
        done = subprocess.run([str(ENCLAVE), "search", "anything"], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 1
        assert "in use by another enclave process" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        held.close()
    done = subprocess.run([str(ENCLAVE), "search", "anything", "--json"], env=cli_env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
