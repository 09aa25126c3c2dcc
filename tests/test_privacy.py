"""No code path may reach beyond this machine: ingest, search and ask run under an audit hook
that records every socket connect and name lookup, and any non-loopback one fails the test.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import core.offline
from tests.ingest import ocr_files

HOOKED_RUN = textwrap.dedent(
    """
    import ipaddress, json, sys

    attempts = []
    programs = []  # what ran as a child process (OCR's Tesseract): it must run, and offline

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
        elif event == "subprocess.Popen":
            programs.append(" ".join(str(a) for a in (args[1] or [args[0]])))
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
    print("RESULT" + json.dumps({"attempts": attempts, "outcomes": outcomes,
                                 "programs": programs}))
    """
)


@pytest.mark.parametrize("embedding", ["sentence-transformers", "onnx-int8"])
def test_ingest_search_and_ask_never_leave_the_machine(tmp_path: Path, samples, cli_env,
                                                       embedding):
    script = tmp_path / "hooked.py"
    script.write_text(HOOKED_RUN)
    # A scan, read by OCR (Tesseract, a local process the hook sees start).
    scan = tmp_path / "scans" / "notice.png"
    scan.parent.mkdir()
    ocr_files.save(ocr_files.text_image(["Visitors sign in at the front desk."]), scan)
    commands = [
        ["ingest", str(samples["public"]), str(samples["finance"]), str(scan.parent)],
        ["search", "hotel limit per night", "--group", "finance"],
        # The in-process model (llama.cpp) and the answering path.
        ["ask", "What is the hotel limit per night?", "--group", "finance"],
        ["status"],
    ]
    env = {**cli_env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # fp32 loads PyTorch and sentence-transformers; onnx-int8 (the default) ONNX Runtime.
    env["ENCLAVE_EMBEDDING__MODE"] = embedding
    # Whatever an operator's environment says, the opt-outs are forced on.
    env["DO_NOT_TRACK"] = ""
    env["HF_HUB_OFFLINE"] = "0"
    done = subprocess.run([sys.executable, str(script), json.dumps(commands)],
                          env=env, capture_output=True, text=True, timeout=900)
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    result = json.loads(line[len("RESULT"):])
    assert result["attempts"] == [], result["attempts"]
    # Tesseract is a native program no audit hook can see into; it has no network code, and
    # runs with nothing but its page on stdin. That it ran at all is what this shows.
    assert any("tesseract" in p for p in result["programs"]), result["programs"]
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


# A picture a test document links: TEST-NET-1, which routes nowhere.
PIXEL = "http://192.0.2.1/pixel.png"
# A connect or send to an Internet address in an strace line: IPv4 other than 127/8, or IPv6
# other than ::1 (and its IPv4-mapped loopback).
_INET = re.compile(r'sa_family=AF_INET6?, .*?(?:inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")')


def _outbound(trace: str) -> list[str]:
    """Lines of an ``strace -e trace=network`` log that reach beyond loopback."""
    found = []
    for line in trace.splitlines():
        for v4, v6 in _INET.findall(line):
            address = v4 or v6.removeprefix("::ffff:")
            if not ipaddress.ip_address(address).is_loopback:
                found.append(line)
    return found


def test_the_outbound_check_of_traces_is_not_vacuous() -> None:
    lines = [
        '812 connect(12, {sa_family=AF_INET, sin_port=htons(443), '
        'sin_addr=inet_addr("93.184.216.34")}, 16) = -1',
        '812 connect(12, {sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "2606:2800:220:1::", &sin6_addr), sin6_scope_id=0}, 28) = -1',
        '812 connect(3, {sa_family=AF_INET, sin_port=htons(6379), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        '812 connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT',
    ]
    assert _outbound("\n".join(lines)) == lines[:2]


@pytest.mark.skipif(shutil.which("strace") is None or shutil.which("soffice") is None,
                    reason="needs strace and LibreOffice")
def test_a_libreoffice_conversion_never_leaves_the_machine(tmp_path: Path, cli_env) -> None:
    """LibreOffice is a native program the audit hook cannot see into: the whole ingest runs
    under strace, which sees every connect and send of every process it starts. The .doc
    links a picture on another host, which LibreOffice fetches unless told not to (the
    test below)."""
    from tests.ingest.office_files import legacy

    folder = tmp_path / "legacy"
    folder.mkdir()
    legacy(folder, ".doc", ["Visitors sign in at the front desk before nine."],
           picture_url=PIXEL)
    legacy(folder, ".ods", ["Desk hours: nine to five."], stem="hours")
    script = tmp_path / "hooked.py"
    script.write_text(HOOKED_RUN)
    trace = tmp_path / "trace.txt"
    env = {**cli_env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=execve,connect,sendto,sendmsg", "-o", str(trace),
         sys.executable, str(script), json.dumps([["ingest", str(folder)]])],
        env=env, capture_output=True, text=True, timeout=900)
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    result = json.loads(line[len("RESULT"):])
    assert result["attempts"] == [] and result["outcomes"] == [0], (result, done.stderr[-3000:])
    log = trace.read_text()
    assert 'execve("/usr/lib/libreoffice/program/soffice.bin"' in log  # it did convert
    assert _outbound(log) == []


@pytest.mark.skipif(shutil.which("strace") is None or shutil.which("soffice") is None
                    or subprocess.run(["unshare", "-n", "true"], capture_output=True,
                                      check=False).returncode != 0,
                    reason="needs strace, LibreOffice and network namespaces (unshare -n)")
def test_libreoffice_left_to_itself_would_fetch_a_linked_picture(tmp_path: Path) -> None:
    """Why conversions run with a locked-down profile: a plain one fetches the picture a
    document links. Run in a network namespace of its own, where nothing can leave."""
    from tests.ingest.office_files import legacy

    doc = legacy(tmp_path, ".doc", ["A document with a tracking pixel."], picture_url=PIXEL)
    trace = tmp_path / "trace.txt"
    subprocess.run(
        ["unshare", "-n", "strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace),
         str(shutil.which("soffice")), f"-env:UserInstallation={(tmp_path / 'plain').as_uri()}",
         "--headless", "--convert-to", "docx", "--outdir", str(tmp_path / "out"), str(doc)],
        capture_output=True, timeout=300, check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path)})
    assert any("192.0.2.1" in line for line in _outbound(trace.read_text()))
