"""Legacy and OpenDocument office files, converted by LibreOffice in headless mode.

.doc, .ppt and .xls (Office 97-2003), .odp and .ods become .docx, .pptx or .xlsx, which
the partitioners in :mod:`ingest.parse` read. Each conversion:

- runs in a folder of its own (input copy, output, LibreOffice's profile, its HOME and
  TMPDIR), removed when the caller is done with the result. LibreOffice lets one process
  own a profile and hands every other start that names the same profile to it, so two
  workers sharing a profile would convert each other's files or wait on each other.
- runs in a session of its own, with a time limit. On timeout the whole session is
  killed: ``soffice`` is a launcher whose child ``soffice.bin`` does the work, and
  killing only the launcher would leave that child running.
- is refused before it starts when the file is password-protected: headless LibreOffice
  cannot ask for the password and would only run into the time limit.
- starts with a profile that keeps it off the network and runs no macros. LibreOffice
  loads a document's linked pictures (a tracking pixel, an intranet URL) while it
  converts; with every proxy pointed at a closed port on this machine it fetches nothing
  (tests/test_privacy.py runs a conversion under strace).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import (
    CorruptDocument,
    EncryptedDocument,
    TooLarge,
    UnreadableFile,
    UnsupportedType,
    one_line,
)
from core.settings import ConvertSettings
from ingest.overlap import on_abandon

log = logging.getLogger(__name__)

# extension -> the format it is converted to (LibreOffice picks the filter from both).
TARGETS: dict[str, str] = {
    ".doc": ".docx",
    ".ppt": ".pptx",
    ".xls": ".xlsx",
    ".odp": ".pptx",
    ".ods": ".xlsx",
}

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# How each kind of file may begin: Office 97-2003's OLE container, a zip (OOXML or
# OpenDocument under the old name), RTF (Word's "save as .doc"), markup (HTML or XML
# saved under the name). LibreOffice reads anything else as plain text, so a corrupt or
# truncated file would come out as a line of garbage rather than fail.
_ANY_OFFICE = (_OLE_MAGIC, b"PK\x03\x04", b"{\\rtf", b"<")
_HEADERS: dict[str, tuple[bytes, ...]] = {
    ".doc": _ANY_OFFICE, ".ppt": _ANY_OFFICE, ".xls": _ANY_OFFICE,
    ".odp": (b"PK\x03\x04", b"<"), ".ods": (b"PK\x03\x04", b"<"),
}
# Lines LibreOffice prints on every run that say nothing about the file.
_NOISE = ("warning: failed to launch javaldx", "convert ", "overwriting:")
# How long the killed tree gets to disappear before we give up waiting on it.
_KILL_WAIT_S = 5.0
# Written into each new profile before LibreOffice first starts on it: every proxy (manual,
# no exceptions) is the discard port of this machine, so no link is fetched from elsewhere;
# macros never run; links to remote resources are blocked where LibreOffice can block them.
_LOCKED_DOWN = {
    "/org.openoffice.Inet/Settings": {
        "ooInetProxyType": "2", "ooInetNoProxy": "",
        **{f"ooInet{kind}Proxy{part}": value
           for kind in ("HTTP", "HTTPS", "FTP")
           for part, value in (("Name", "127.0.0.1"), ("Port", "9"))},
    },
    "/org.openoffice.Office.Common/Security/Scripting": {
        "BlockUntrustedRefererLinks": "true", "DisableMacrosExecution": "true",
        "MacroSecurityLevel": "3",
    },
}


@contextmanager
def converted(path: Path, settings: ConvertSettings, scratch: Path | None = None) -> Iterator[Path]:
    """The file ``path`` converted to its modern format, in a folder removed on leaving.

    ``scratch``: where the conversion's folder goes (None: the system's temp folder).
    Raises a :class:`core.errors.DocumentError` saying why it cannot be converted.
    """
    ext = path.suffix.lower()
    target = TARGETS[ext]
    if not settings.enabled:
        raise UnsupportedType(
            f"{ext}: conversion by LibreOffice is off (ENCLAVE_CONVERT__ENABLED=false)"
        )
    refuse_unknown(path, ext)
    refuse_encrypted(path, ext)
    folder = Path(tempfile.mkdtemp(prefix="convert-", dir=scratch))
    try:
        # A copy under a plain name: LibreOffice names its output after its input, and a
        # name with odd characters or a leading dash must not reach its command line.
        source = folder / f"input{ext}"
        shutil.copyfile(path, source)
        out_dir = folder / "out"
        out_dir.mkdir()
        message = _run(settings, folder, source, out_dir, target)
        result = out_dir / f"input{target}"
        if not result.is_file() or result.stat().st_size == 0:
            # LibreOffice exits 0 when it cannot load a file; it only says so.
            raise CorruptDocument(f"LibreOffice could not read this {ext} file"
                                  + (f": {message}" if message else ""))
        yield result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def refuse_unknown(path: Path, ext: str) -> None:
    """Raise CorruptDocument unless the file begins as a ``ext`` file can."""
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc)) from exc
    if not head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(_HEADERS[ext]):
        raise CorruptDocument(f"not a {ext} file: it begins like none of the formats saved as {ext}")


def refuse_encrypted(path: Path, ext: str) -> None:
    """Raise EncryptedDocument for a password-protected legacy or OpenDocument file."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError:
        return  # the copy or the conversion reports it
    if ext in (".doc", ".ppt", ".xls") and head.startswith(_OLE_MAGIC):
        import msoffcrypto

        try:
            with path.open("rb") as handle:
                encrypted = msoffcrypto.OfficeFile(handle).is_encrypted()
        except Exception as exc:  # noqa: BLE001 - LibreOffice may still read what this cannot
            log.debug("msoffcrypto could not read %s: %s", path, exc)
            return
        if encrypted:
            raise EncryptedDocument(f"password-protected {ext} file")
    elif ext in (".odp", ".ods") and head.startswith(b"PK"):
        # An encrypted OpenDocument package lists each encrypted part's cipher in its manifest.
        try:
            with zipfile.ZipFile(path) as package:
                manifest = package.read("META-INF/manifest.xml")
        except Exception:  # noqa: BLE001 - no manifest: LibreOffice says what is wrong
            return
        if b"encryption-data" in manifest:
            raise EncryptedDocument(f"password-protected {ext} file")


def locked_down_profile(profile: Path) -> Path:
    """A new LibreOffice profile folder with the settings of ``_LOCKED_DOWN``."""
    (profile / "user").mkdir(parents=True)
    items = "".join(
        f'<item oor:path="{path}"><prop oor:name="{name}" oor:op="fuse">'
        f"<value>{value}</value></prop></item>\n"
        for path, props in _LOCKED_DOWN.items() for name, value in props.items()
    )
    (profile / "user" / "registrymodifications.xcu").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<oor:items xmlns:oor="http://openoffice.org/2001/registry" '
        'xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        f"{items}</oor:items>\n",
        encoding="utf-8",
    )
    return profile


def _run(settings: ConvertSettings, folder: Path, source: Path, out_dir: Path, target: str) -> str:
    """Run the conversion; returns what LibreOffice said, less its routine lines."""
    profile = locked_down_profile(folder / "profile")
    command = [
        settings.soffice,
        f"-env:UserInstallation={profile.as_uri()}",
        "--headless", "--invisible", "--nologo", "--nodefault", "--norestore",
        "--nolockcheck", "--convert-to", target.lstrip("."), "--outdir", str(out_dir),
        str(source),
    ]
    # Nothing of the operator's environment that could make LibreOffice write elsewhere
    # (HOME, TMPDIR, XDG_*) or reach a display.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder),
        "TMPDIR": str(folder),
        "LANG": "C.UTF-8",
        "SAL_USE_VCLPLUGIN": "svp",
        # Read by LibreOffice's system proxy setting, should the profile's ever be ignored.
        **dict.fromkeys(("http_proxy", "https_proxy", "ftp_proxy", "all_proxy"),
                        "http://127.0.0.1:9"),
    }
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=env, cwd=folder, start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise UnsupportedType(
            f"{source.suffix}: needs LibreOffice, and {settings.soffice!r} is not installed"
        ) from exc
    try:
        # Given up from outside (a time limit): killing the session ends the wait below.
        with on_abandon(lambda: _kill_group(process)):
            output, _ = process.communicate(timeout=settings.timeout_s)
    except subprocess.TimeoutExpired:
        raise TooLarge(
            f"LibreOffice did not finish converting it within {settings.timeout_s:g} s"
        ) from None
    finally:
        kill_session(process)
    message = _message(output)
    if process.returncode != 0:
        raise CorruptDocument(
            f"LibreOffice could not convert it (exit {process.returncode})"
            + (f": {message}" if message else "")
        )
    return message


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_session(process: subprocess.Popen[bytes]) -> None:
    """Kill every process of the session ``process`` leads, and wait until they are gone.

    Also after a normal exit: a child left behind by the launcher would hold the profile
    folder open and keep running for nothing.
    """
    _kill_group(process)
    for pid in session_members(process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    process.wait()
    if process.stdout is not None:
        process.stdout.close()
    deadline = time.monotonic() + _KILL_WAIT_S
    while session_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # the killed children are reaped by init, not by us


def session_members(session: int) -> list[int]:
    """Live (not zombie) processes whose session is ``session``; empty where /proc is not."""
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read().decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid pgrp session ...; comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == session:
            members.append(int(entry))
    return members


def _message(output: bytes | None) -> str:
    lines = (output or b"").decode(errors="replace").splitlines()
    useful = [line.strip() for line in lines
              if line.strip() and not line.strip().lower().startswith(_NOISE)]
    return one_line(Exception(" ".join(useful))) if useful else ""
