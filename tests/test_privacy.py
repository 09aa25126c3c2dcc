"""No code path may reach beyond this machine: ingest, search and ask run under an audit hook
that records every socket connect and name lookup, and any non-loopback one fails the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import core.offline

HOOKED_RUN = textwrap.dedent(
    """
    import ipaddress, json, sys

    attempts = []

    def is_loopback(host):
        if host in (None, "", "localhost") or str(host).startswith("/"):
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False  # a name to resolve: that itself would leave the machine

    def hook(event, args):
        if event == "socket.connect":
            address = args[1]
            host = address[0] if isinstance(address, tuple) else address
            if not is_loopback(host):
                attempts.append([event, str(address)])
                raise PermissionError("blocked by the privacy test")  # never let it out
        elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"):
            if not is_loopback(args[0]):
                attempts.append([event, str(args[0])])
                raise PermissionError("blocked by the privacy test")

    sys.addaudithook(hook)

    from serve.cli.main import app

    outcomes = []
    for argv in json.loads(sys.argv[1]):
        try:
            app(argv, standalone_mode=False)
            outcomes.append(0)
        except SystemExit as exc:
            outcomes.append(exc.code)
        except Exception as exc:
            outcomes.append(repr(exc))
    print("RESULT" + json.dumps({"attempts": attempts, "outcomes": outcomes}))
    """
)


@pytest.mark.parametrize("embedding", ["sentence-transformers", "onnx-int8"])
def test_ingest_search_and_ask_never_leave_the_machine(tmp_path: Path, samples, cli_env,
                                                       embedding):
    script = tmp_path / "hooked.py"
    script.write_text(HOOKED_RUN)
    commands = [
        ["ingest", str(samples["public"]), str(samples["finance"])],
        ["search", "hotel limit per night", "--group", "finance"],
        # The in-process model (llama.cpp) and the answering path.
        ["ask", "What is the hotel limit per night?", "--group", "finance"],
        ["status"],
    ]
    env = {**cli_env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # onnx-int8 exports its model on first use: that path runs under the hook too.
    env["ENCLAVE_EMBEDDING__MODE"] = embedding
    # Whatever an operator's environment says, the opt-outs are forced on.
    env["DO_NOT_TRACK"] = ""
    env["HF_HUB_OFFLINE"] = "0"
    done = subprocess.run([sys.executable, str(script), json.dumps(commands)],
                          env=env, capture_output=True, text=True, timeout=900)
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    result = json.loads(line[len("RESULT"):])
    assert result["attempts"] == [], result["attempts"]
    assert len(result["outcomes"]) == len(commands)
    assert all(
        o in (0, None) for o in result["outcomes"]
    ), (result["outcomes"], done.stderr[-3000:])


def test_audit_hook_catches_an_outbound_connect(tmp_path: Path):
    """The hook is not vacuous: it sees a connect before it happens (and blocks it)."""
    probe = textwrap.dedent(
        """
        import socket, sys
        seen = []

        def hook(event, args):
            if event == "socket.connect":
                seen.append(args[1])
                raise PermissionError("blocked")  # the packet is never sent

        sys.addaudithook(hook)
        s = socket.socket()
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1, and blocked before any packet leaves
        except PermissionError:
            pass
        print(seen == [("192.0.2.1", 9)])
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "True"


def test_telemetry_opt_outs_are_forced():
    os.environ["DO_NOT_TRACK"] = ""
    core.offline.apply()
    for key in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                "HF_HUB_DISABLE_TELEMETRY", "ANONYMIZED_TELEMETRY"):
        assert os.environ[key], key
    assert os.environ["HF_HUB_OFFLINE"] == "1"
