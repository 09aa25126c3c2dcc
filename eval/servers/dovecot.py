"""A throwaway Dovecot IMAP server for tests and ``enclave bench sources``: its own config,
mail and logs in a temp folder.

Runs ``dovecot -F`` (package dovecot-imapd) in the foreground on a free port of 127.0.0.1,
one user with a plaintext password, Maildir storage. It never touches the system's
Dovecot. Started as root, Dovecot's own users (dovecot, dovenull, made by the package) run
its login and auth processes and the mail belongs to "nobody": Dovecot refuses mail access
as root, and its login processes refuse to run as root. The temp folder is then made in
/tmp, outside pytest's (whose parents are private to root), so those users can reach it.
Started as another user, everything runs as that user.
"""

from __future__ import annotations

import datetime
import grp
import imaplib
import ipaddress
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

DOVECOT = shutil.which("dovecot") or next(
    (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.path.exists(p)), None)

USER = "alice"
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dovecot:
    """One running server; ``tls``: ssl = required, with an imaps port and a self-signed
    certificate (plain connections may still connect but not log in)."""

    def __init__(self, *, tls: bool = False) -> None:
        assert DOVECOT, "dovecot is not installed (apt-get install dovecot-imapd)"
        self.binary = DOVECOT
        self.tls = tls
        # /tmp for root: a TMPDIR private to root would shut Dovecot's own users out.
        where = "/tmp" if os.geteuid() == 0 and os.path.isdir("/tmp") else None
        self.root = Path(tempfile.mkdtemp(prefix="enclave-dovecot-", dir=where))
        self.root.chmod(0o755)
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.mail = self.root / "mail"
        self.log = self.root / "dovecot.log"
        if os.geteuid() == 0:
            owner = pwd.getpwnam("nobody")
            self.uid, self.gid = owner.pw_uid, owner.pw_gid
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
        self.proc: subprocess.Popen[bytes] | None = None

    # -- lifetime ---------------------------------------------------------------------

    def start(self, timeout_s: float = 15.0) -> Dovecot:
        inbox = self.mail / USER
        for sub in ("", "cur", "new", "tmp"):
            (inbox / sub).mkdir(parents=True, exist_ok=True)
        for path in (self.mail, inbox, *(inbox / s for s in ("cur", "new", "tmp"))):
            os.chown(path, self.uid, self.gid)
        (self.root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        (self.root / "passwd").chmod(0o644)
        conf = self.root / "dovecot.conf"
        conf.write_text(self._config())
        with (self.root / "stderr.log").open("wb") as err:
            self.proc = subprocess.Popen([self.binary, "-F", "-c", str(conf)], stdout=err,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not self._greets():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise RuntimeError(f"dovecot did not start: {output}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def url(self, folder: str = "INBOX", *, tls: bool = False) -> str:
        if tls:
            return f"imaps://127.0.0.1:{self.tls_port}/{folder}"
        return f"imap://127.0.0.1:{self.port}/{folder}"

    def output(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.root / "stderr.log", self.log) if p.exists()]
        return "\n".join(parts)[-4000:]

    # -- mail -------------------------------------------------------------------------

    @contextmanager
    def admin(self) -> Iterator[imaplib.IMAP4]:
        """A session of the test user, to put mail in and look at it the way a client does."""
        if self.tls:
            conn: imaplib.IMAP4 = imaplib.IMAP4_SSL("127.0.0.1", self.tls_port, timeout=10,
                                                    ssl_context=_unverified())
        else:
            conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        conn.login(USER, PASSWORD)
        try:
            yield conn
        finally:
            conn.logout()

    def create(self, folder: str) -> None:
        """A folder; ``folder`` already in IMAP's modified UTF-7."""
        with self.admin() as conn:
            typ, data = conn.create(f'"{folder}"')
            assert typ == "OK", data

    def append(self, raw: bytes, folder: str = "INBOX") -> int:
        """Deliver over IMAP APPEND; the new message's UID."""
        with self.admin() as conn:
            typ, data = conn.append(f'"{folder}"', None, None, raw)
            assert typ == "OK", data
        found = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
        assert found, data
        return int(found.group(1))

    def drop(self, raw: bytes) -> int:
        """Deliver into INBOX's Maildir directly, as a local delivery agent would: quicker
        than APPEND for a big message. The UID it got."""
        return self.drop_many([raw])[-1]

    def drop_many(self, raws: Sequence[bytes]) -> list[int]:
        """``drop`` for many messages with one IMAP session in all (a benchmark's thousand
        messages): the UIDs Dovecot gave them, one run numbered at once when it next looks."""
        inbox = self.mail / USER
        for n, raw in enumerate(raws):
            name = f"{time.time_ns()}.{n:08d}.P{os.getpid()}.enclave-test"
            tmp = inbox / "tmp" / name
            tmp.write_bytes(raw)
            os.chown(tmp, self.uid, self.gid)
            tmp.rename(inbox / "new" / name)
        with self.admin() as conn:
            conn.select("INBOX", readonly=True)  # Dovecot numbers the new files now
            _, data = conn.uid("FETCH", "*", "(UID)")
        found = re.search(rb"UID (\d+)", data[-1] or b"")
        assert found, data
        last = int(found.group(1))
        return list(range(last - len(raws) + 1, last + 1))

    def expunge(self, uid: int, folder: str = "INBOX") -> None:
        with self.admin() as conn:
            conn.select(f'"{folder}"')
            conn.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)")
            conn.expunge()

    def flags(self, folder: str = "INBOX") -> dict[int, str]:
        """Each message's flags by UID, e.g. {1: "\\Recent"}; read-only, so nothing changes."""
        with self.admin() as conn:
            conn.select(f'"{folder}"', readonly=True)
            _, data = conn.uid("FETCH", "1:*", "(UID FLAGS)")
        out: dict[int, str] = {}
        for line in data:
            if isinstance(line, bytes) and (m := re.search(rb"UID (\d+) FLAGS \(([^)]*)\)", line)):
                out[int(m.group(1))] = m.group(2).decode()
        return out

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.admin() as conn:
            _, data = conn.status(f'"{folder}"', "(UIDVALIDITY)")
        found = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
        assert found, data
        return int(found.group(1))

    def bytes_sent(self) -> list[int]:
        """What the server sent in each finished session ("out=" of its log), oldest first."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [int(n) for n in re.findall(r"Disconnected: Logged out in=\d+ out=(\d+)", text)]

    def wait_sessions(self, count: int, timeout_s: float = 5.0) -> list[int]:
        """``bytes_sent`` once it holds ``count`` sessions (the log is written asynchronously)."""
        deadline = time.monotonic() + timeout_s
        while len(sent := self.bytes_sent()) < count:
            assert time.monotonic() < deadline, f"only {len(sent)} sessions logged: {self.output()}"
            time.sleep(0.05)
        return sent

    # -- internals --------------------------------------------------------------------

    def _greets(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                return s.recv(100).startswith(b"* OK")
        except OSError:
            return False

    def _config(self) -> str:
        root = self.root
        if os.geteuid() == 0:
            users = "\n"  # Dovecot's own users (the package's dovecot, dovenull) run its helpers
        else:
            me = pwd.getpwuid(os.getuid()).pw_name
            group = grp.getgrgid(os.getgid()).gr_name
            users = (f"default_internal_user = {me}\ndefault_login_user = {me}\n"
                     f"default_internal_group = {group}\n"
                     "service imap-login {\n  chroot =\n}\n")
        if self.tls:
            cert, key = _self_signed(root)
            tls = (f"ssl = required\nssl_cert = <{cert}\nssl_key = <{key}\n"
                   "disable_plaintext_auth = yes\n")
            imaps = f"  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {self.tls_port}\n  }}\n"
        else:
            tls = "ssl = no\ndisable_plaintext_auth = no\n"
            imaps = "  inet_listener imaps {\n    port = 0\n  }\n"
        return f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {self.log}
instance_name = enclave-test-{self.port}
protocols = imap
listen = 127.0.0.1
{tls}auth_mechanisms = plain login
auth_failure_delay = 0
{users}mail_uid = {self.uid}
mail_gid = {self.gid}
first_valid_uid = {self.uid}
first_valid_gid = {self.gid}
mail_location = maildir:{self.mail}/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = {root}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
{imaps}}}
"""


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1 that nothing trusts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
