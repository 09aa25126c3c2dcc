"""Legacy and OpenDocument office files through the real LibreOffice (ingest/convert.py):
each format converts and parses with its text, a file it cannot read fails alone with a
reason, conversions run side by side, and a conversion over its time limit leaves no
LibreOffice process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from core.errors import CorruptDocument, DocumentError, TooLarge, UnsupportedType
from core.settings import ConvertSettings, Settings
from ingest.convert import converted, kill_session, session_members
from ingest.parse import parse_file
from tests.ingest.office_files import SOFFICE, legacy

pytestmark = pytest.mark.skipif(SOFFICE is None, reason="LibreOffice is not installed")

LINES = [
    "Quarterly audit: the cold storage unit failed inspection in March.",
    "Remediation: compressor replaced by Nordfrost on 12 April.",
]
KINDS = (".doc", ".ppt", ".xls", ".odp", ".ods")
LIMITS = {"max_bytes": 50_000_000, "max_pages": 1000}


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("office")
    return {ext: legacy(folder, ext, LINES) for ext in KINDS}


def _soffice_running(marker: str) -> list[int]:
    """Live processes whose command line names ``marker`` (our scratch folder)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().decode(errors="replace")
            with open(f"/proc/{entry}/stat", "rb") as handle:
                state = handle.read().decode(errors="replace").rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    """Running, not a zombie (killed children are reaped by init, in its own time)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _named(pids: list[int], name: str) -> list[int]:
    named = []
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                named.append(pid)
        except OSError:
            continue
    return named


@pytest.mark.parametrize("ext", KINDS)
def test_each_legacy_format_converts_and_keeps_its_text(office, ext, tmp_path: Path) -> None:
    parsed = parse_file(office[ext], **LIMITS, convert=ConvertSettings(), scratch=tmp_path)
    words = " ".join(parsed.text.split())
    for line in LINES:
        assert line in words, (ext, parsed.text)
    assert parsed.filetype == ext.lstrip(".")
    if ext in (".ppt", ".odp"):
        assert parsed.page_count == len(LINES)  # one page per slide, for citations
    assert list(tmp_path.iterdir()) == []  # the conversion's folder went with it


def test_a_file_libreoffice_cannot_read_fails_alone_with_a_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.ppt"
    # An OLE header and then nothing that makes a presentation.
    broken.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + os.urandom(4096))
    with pytest.raises(CorruptDocument) as caught:
        parse_file(broken, **LIMITS, scratch=tmp_path)
    assert str(caught.value).startswith("corrupt: LibreOffice could not read this .ppt file")
    assert [p.name for p in tmp_path.iterdir()] == ["broken.ppt"]


def test_a_missing_or_disabled_converter_says_so(office, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedType, match=r"needs LibreOffice.*not installed"):
        parse_file(office[".doc"], **LIMITS, convert=ConvertSettings(soffice="no-such-soffice"))
    with pytest.raises(UnsupportedType, match="ENCLAVE_CONVERT__ENABLED"):
        parse_file(office[".doc"], **LIMITS, convert=ConvertSettings(enabled=False))


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCLAVE_CONVERT__TIMEOUT_S", "7.5")
    monkeypatch.setenv("ENCLAVE_CONVERT__SOFFICE", "/opt/libreoffice/program/soffice")
    settings = Settings().convert
    assert (settings.timeout_s, settings.soffice) == (7.5, "/opt/libreoffice/program/soffice")


def test_two_conversions_at_once_each_use_their_own_profile(office, tmp_path: Path) -> None:
    """LibreOffice hands a start to the process that owns its profile; with one shared
    profile the second conversion would wait on, or be done by, the first."""
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def run(ext: str) -> None:
        try:
            results[ext] = parse_file(office[ext], **LIMITS, scratch=tmp_path).text
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(ext,)) for ext in (".doc", ".odp")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    assert all(LINES[0] in " ".join(results[ext].split()) for ext in (".doc", ".odp"))


def test_a_conversion_over_its_time_limit_leaves_no_soffice_behind(tmp_path: Path) -> None:
    # 30,000 rows take LibreOffice about 9 s to convert here: the limit strikes mid-work,
    # long after soffice.bin has started on its own.
    rows = [f"Row {n}: cold storage unit {n} passed inspection." for n in range(30_000)]
    big = legacy(tmp_path, ".ods", rows, stem="big")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            seen.update(_named(_soffice_running(str(scratch)), "soffice.bin"))

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    try:
        with pytest.raises(TooLarge, match=r"did not finish converting it within 3 s"):
            with converted(big, ConvertSettings(timeout_s=3), scratch):
                pass
    finally:
        stop.set()
        watcher.join()
    assert time.monotonic() - started < 15
    assert seen, "soffice.bin was never seen converting"
    assert _soffice_running(str(scratch)) == []
    assert [pid for pid in seen if _alive(pid)] == []
    assert list(scratch.iterdir()) == []  # its input copy, profile and output removed


def test_killing_only_the_launcher_would_leave_soffice_running(tmp_path: Path) -> None:
    """The check above is not vacuous: soffice is a launcher, soffice.bin its child, and
    killing the launcher alone leaves the child converting on."""
    process = subprocess.Popen(
        [str(SOFFICE), f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}",
         "--headless", "--norestore"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path)},
    )
    try:
        deadline = time.monotonic() + 60
        while not _named(session_members(process.pid), "soffice.bin"):
            assert time.monotonic() < deadline, "soffice.bin never started"
            time.sleep(0.1)
        time.sleep(1)  # killed sooner, soffice.bin gives up starting by itself
        process.send_signal(signal.SIGKILL)
        process.wait()
        time.sleep(0.5)
        assert _soffice_running(str(tmp_path)) != []  # orphaned, still running
    finally:
        kill_session(process)
    assert _soffice_running(str(tmp_path)) == []


def test_converted_errors_are_document_errors(office, tmp_path: Path) -> None:
    """Every way a conversion fails is a DocumentError: the file fails alone, the run goes on."""
    empty = tmp_path / "empty.doc"
    empty.write_bytes(b"")
    for path in (empty, tmp_path / "missing.xls"):
        with pytest.raises(DocumentError):
            parse_file(path, **LIMITS, scratch=tmp_path)
