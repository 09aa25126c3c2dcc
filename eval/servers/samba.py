"""A real Samba smbd for the SMB connector's tests and ``enclave bench sources``, started
and stopped by the test or benchmark itself.

The connector's permission mapping is only worth anything against what a real server puts
in a security descriptor, so the tests run smbd rather than a mock: a throwaway smb.conf
with every directory Samba writes to under one temp folder, listening on 127.0.0.1 on a
free port (never 445, so it neither needs nor disturbs a system Samba), and a share on a
plain folder whose POSIX owner, group and mode Samba turns into the descriptor.

It needs root (smbd switches to the connecting user; the test accounts are real local
accounts) and the Debian ``samba`` package. Accounts and groups it adds to the host carry
the ``enclave-test-`` prefix and are created only when missing, so reruns are harmless.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SMBD = shutil.which("smbd") or "/usr/sbin/smbd"
PDBEDIT = shutil.which("pdbedit") or "/usr/bin/pdbedit"

USER = "enclave-test-svc"
PASSWORD = "Enclave-test-pw-7"
FINANCE = "enclave-test-finance"
ENGINEERING = "enclave-test-engineering"
SHARE = "docs"


def missing() -> str | None:
    """Why a real smbd cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "smbd tests need root (local accounts, smbd switching users)"
    if not (Path(SMBD).exists() and Path(PDBEDIT).exists()):
        return "Samba is not installed (apt-get install samba)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_accounts() -> None:
    """The service account and its two groups, added once; it reads both groups' files."""
    for group in (FINANCE, ENGINEERING):
        try:
            grp.getgrnam(group)
        except KeyError:
            subprocess.run(["groupadd", "-f", group], check=True)
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", "-d", "/nonexistent",
             "-G", f"{FINANCE},{ENGINEERING}", USER],
            check=True,
        )
    else:
        subprocess.run(["usermod", "-a", "-G", f"{FINANCE},{ENGINEERING}", USER], check=True)


@dataclass
class Samba:
    """One running smbd: where it listens, its share's folder, and how to log on."""

    host: str
    port: int
    share: str
    root: Path
    username: str
    password: str
    log: Path

    def url(self, path: str = "") -> str:
        return f"smb://{self.host}:{self.port}/{self.share}" + (f"/{path}" if path else "")


CONF = """\
[global]
    server role = standalone server
    workgroup = ENCLAVETEST
    netbios name = ENCLAVETEST
    smb ports = {port}
    interfaces = 127.0.0.1
    bind interfaces only = yes
    disable netbios = yes
    server min protocol = SMB2_10
    map to guest = never
    security = user
    passdb backend = tdbsam:{state}/private/passdb.tdb
    private dir = {state}/private
    lock directory = {state}/lock
    state directory = {state}/state
    cache directory = {state}/cache
    pid directory = {state}/pid
    ncalrpc dir = {state}/ncalrpc
    binddns dir = {state}/binddns
    usershare path =
    log file = {state}/smbd.log
    log level = 1
    max log size = 0
    load printers = no
    printing = bsd
    printcap name = /dev/null
    disable spoolss = yes
    obey pam restrictions = no
    unix password sync = no
    nt acl support = yes

[{share}]
    path = {root}
    read only = yes
    browseable = yes
"""


@contextmanager
def running_smbd(timeout_s: float = 20.0) -> Iterator[Samba]:
    """Start smbd on a free loopback port with one share; stop it and remove its files after."""
    ensure_accounts()
    # Not under pytest's tmp_path: that is 0700 root, and smbd enters the share as the
    # service account, which must be able to traverse down to it.
    base = Path(tempfile.mkdtemp(prefix="enclave-smb-", dir=_traversable_tmp()))
    base.chmod(0o755)
    state, root = base / "samba", base / "share"
    for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc", "binddns"):
        (state / sub).mkdir(parents=True)
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    port = free_port()
    conf = state / "smb.conf"
    conf.write_text(CONF.format(port=port, state=state, share=SHARE, root=root))
    subprocess.run(
        [PDBEDIT, f"--configfile={conf}", "-a", "-t", "-u", USER],
        input=f"{PASSWORD}\n{PASSWORD}\n", text=True, check=True, capture_output=True,
    )
    log = state / "smbd.log"
    # A session of its own: smbd signals its whole process group when it stops, which
    # would otherwise be pytest's; and stopping it stops the children it forked per client.
    proc = subprocess.Popen(
        [SMBD, "--foreground", "--no-process-group", f"--configfile={conf}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"smbd exited ({proc.returncode}): {_tail(log)}"
                    ) from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"smbd did not listen within {timeout_s:g} s: {_tail(log)}") from None
                time.sleep(0.05)
        yield Samba("127.0.0.1", port, SHARE, root, USER, PASSWORD, log)
    finally:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)


def _traversable_tmp() -> str:
    """The temp folder when every folder above it lets others through, else /tmp."""
    here = Path(tempfile.gettempdir()).resolve()
    if all(p.stat().st_mode & stat.S_IXOTH for p in (here, *here.parents)):
        return str(here)
    return "/tmp"


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"
