"""The SMB connector against a real Samba smbd: listing, permissions from security
descriptors, change signals, fetching, and the errors a sync reports.

The server maps each file's POSIX owner, group and mode into the descriptor it sends,
so a chgrp or chmod here is exactly what an administrator's change looks like to enclave.
"""

from __future__ import annotations

import grp
import os
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import SourceError, TooLarge, UnreadableFile
from core.settings import OcrSettings
from ingest.parse import parse_file
from ingest.sources.base import Entry
from ingest.sources.smb import SmbConnector, parse_descriptor, readers
from serve.cli.demo import write_pdf
from tests.ingest.sources import samba

FINANCE_TEXT = b"Q3 budget: 4.2 M EUR for the finance team only.\n"
ENGINEERING_TEXT = b"Design review notes for the engineering team.\n"
README_TEXT = b"Welcome to the shared drive.\n"
# Every test that changes files works under scratch/, which the exact listing leaves out.
SCRATCH = "scratch"
# Long enough for a text layer the parser keeps, so no OCR runs.
PDF_LINE = "Revenue grew by 12 percent over the quarter, driven by the northern region."


def _own(path: Path, group: str | None, mode: int) -> None:
    gid = grp.getgrnam(group).gr_gid if group else 0
    os.chown(path, 0, gid)
    path.chmod(mode)


@pytest.fixture(scope="module")
def server() -> Iterator[samba.Samba]:
    if (why := samba.missing()) is not None:
        pytest.skip(why)
    started = time.monotonic()
    with samba.running_smbd() as smb:
        smb_start_s = time.monotonic() - started
        assert smb_start_s < 20
        root = smb.root
        for folder in ("finance", "engineering", "reports/2024", ".git", SCRATCH):
            (root / folder).mkdir(parents=True, exist_ok=True)
            (root / folder).chmod(0o755)
        (root / "reports").chmod(0o755)
        (root / "readme.txt").write_bytes(README_TEXT)
        _own(root / "readme.txt", None, 0o644)
        (root / "finance" / "budget.txt").write_bytes(FINANCE_TEXT)
        _own(root / "finance" / "budget.txt", samba.FINANCE, 0o640)
        (root / "engineering" / "design.txt").write_bytes(ENGINEERING_TEXT)
        _own(root / "engineering" / "design.txt", samba.ENGINEERING, 0o640)
        write_pdf(root / "reports" / "2024" / "q1.pdf", [["Quarterly report", PDF_LINE]])
        _own(root / "reports" / "2024" / "q1.pdf", None, 0o644)
        (root / ".hidden.txt").write_bytes(b"not listed")
        (root / ".git" / "config").write_bytes(b"not listed either")
        yield smb


def connector(server: samba.Samba, path: str = "", **kwargs: object) -> SmbConnector:
    options: dict[str, object] = {"username": server.username, "password": server.password}
    options.update(kwargs)
    return SmbConnector(server.url(path), **options)  # type: ignore[arg-type]


def listing(conn: SmbConnector) -> dict[str, Entry]:
    return {entry.key: entry for entry in conn.entries()}


@pytest.fixture
def scratch(server: samba.Samba, request: pytest.FixtureRequest) -> Iterator[tuple[Path, str]]:
    """A folder of this test's own under scratch/: its local path and its path in the share."""
    relative = f"{SCRATCH}/{request.node.name}"
    folder = server.root / relative
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    yield folder, relative
    shutil.rmtree(folder, ignore_errors=True)


def test_lists_every_file_once_with_its_place_and_signal(server: samba.Samba) -> None:
    conn = connector(server, exclude=[f"{SCRATCH}/*"])
    try:
        found = listing(conn)
    finally:
        conn.close()
    assert sorted(found) == [
        "engineering/design.txt", "finance/budget.txt", "readme.txt", "reports/2024/q1.pdf",
    ]
    pdf = found["reports/2024/q1.pdf"]
    info = (server.root / "reports" / "2024" / "q1.pdf").stat()
    # SMB carries times in 100 ns steps and smbprotocol in microseconds.
    assert pdf.signal == f"{info.st_mtime_ns // 1000 * 1000}:{info.st_size}"
    assert pdf.location == f"smb://127.0.0.1:{server.port}/{server.share}/reports/2024/q1.pdf"
    assert pdf.display == "reports/2024/q1.pdf"
    assert pdf.filename == "q1.pdf"
    for entry in found.values():
        assert server.password not in entry.location
        assert len(entry.access_signal) == 64


def test_readers_come_from_the_security_descriptor(server: samba.Samba) -> None:
    conn = connector(server, exclude=[f"{SCRATCH}/*"])
    try:
        found = listing(conn)
    finally:
        conn.close()
    finance_gid = grp.getgrnam(samba.FINANCE).gr_gid
    budget = found["finance/budget.txt"].principals
    assert f"group:{samba.FINANCE}" in budget
    assert f"sid:S-1-22-2-{finance_gid}" in budget
    assert "user:root" in budget and "sid:S-1-22-1-0" in budget
    assert "other" not in budget and f"group:{samba.ENGINEERING}" not in budget
    design = found["engineering/design.txt"].principals
    assert f"group:{samba.ENGINEERING}" in design and "other" not in design
    readme = found["readme.txt"].principals
    assert "other" in readme and "sid:S-1-1-0" in readme
    # Different groups, different descriptors.
    assert found["finance/budget.txt"].access_signal != found["engineering/design.txt"].access_signal


def test_a_chgrp_changes_readers_but_not_the_content_signal(
    server: samba.Samba, scratch: tuple[Path, str],
) -> None:
    folder, relative = scratch
    path = folder / "plan.txt"
    path.write_bytes(FINANCE_TEXT)
    _own(path, samba.FINANCE, 0o640)
    conn = connector(server, relative)
    try:
        before = listing(conn)["plan.txt"]
        os.chown(path, 0, grp.getgrnam(samba.ENGINEERING).gr_gid)
        after = listing(conn)["plan.txt"]
    finally:
        conn.close()
    assert f"group:{samba.FINANCE}" in before.principals
    assert f"group:{samba.ENGINEERING}" in after.principals
    assert f"group:{samba.FINANCE}" not in after.principals
    assert after.access_signal != before.access_signal
    assert after.signal == before.signal


def test_a_chmod_for_everyone_adds_other(server: samba.Samba, scratch: tuple[Path, str]) -> None:
    folder, relative = scratch
    path = folder / "memo.txt"
    path.write_bytes(b"memo\n")
    _own(path, samba.FINANCE, 0o640)
    conn = connector(server, relative)
    try:
        before = listing(conn)["memo.txt"]
        path.chmod(0o644)
        after = listing(conn)["memo.txt"]
    finally:
        conn.close()
    assert "other" not in before.principals and "other" in after.principals
    assert after.access_signal != before.access_signal and after.signal == before.signal


def test_new_content_changes_the_signal(server: samba.Samba, scratch: tuple[Path, str]) -> None:
    folder, relative = scratch
    path = folder / "notes.txt"
    path.write_bytes(b"first version\n")
    _own(path, None, 0o644)
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    conn = connector(server, relative)
    try:
        before = listing(conn)["notes.txt"]
        path.write_bytes(b"second, longer version\n")
        after = listing(conn)["notes.txt"]
    finally:
        conn.close()
    assert after.signal != before.signal
    assert after.access_signal == before.access_signal


def test_fetch_writes_the_bytes_with_fresh_readers(server: samba.Samba, tmp_path: Path) -> None:
    conn = connector(server, exclude=[f"{SCRATCH}/*"])
    try:
        found = listing(conn)
        budget = conn.fetch(found["finance/budget.txt"], tmp_path)
        pdf = conn.fetch(found["reports/2024/q1.pdf"], tmp_path)
    finally:
        conn.close()
    assert budget.path == tmp_path / "budget.txt"
    assert budget.path.read_bytes() == FINANCE_TEXT
    assert budget.principals == found["finance/budget.txt"].principals
    assert pdf.path.read_bytes() == (server.root / "reports" / "2024" / "q1.pdf").read_bytes()
    parsed = parse_file(pdf.path, max_bytes=10 * 2**20, max_pages=10, ocr=OcrSettings(enabled=False))
    assert PDF_LINE in parsed.text


def test_fetch_reads_readers_again(server: samba.Samba, scratch: tuple[Path, str], tmp_path: Path) -> None:
    folder, relative = scratch
    path = folder / "moved.txt"
    path.write_bytes(b"moved between teams\n")
    _own(path, samba.FINANCE, 0o640)
    conn = connector(server, relative)
    try:
        entry = listing(conn)["moved.txt"]
        os.chown(path, 0, grp.getgrnam(samba.ENGINEERING).gr_gid)
        fetched = conn.fetch(entry, tmp_path)
    finally:
        conn.close()
    assert f"group:{samba.FINANCE}" in entry.principals
    assert f"group:{samba.ENGINEERING}" in fetched.principals
    assert f"group:{samba.FINANCE}" not in fetched.principals


def test_include_and_exclude_globs(server: samba.Samba) -> None:
    conn = connector(server, include=["*.txt"], exclude=["finance/*", f"{SCRATCH}/*"])
    try:
        assert sorted(listing(conn)) == ["engineering/design.txt", "readme.txt"]
    finally:
        conn.close()
    conn = connector(server, "reports")
    try:
        found = listing(conn)
    finally:
        conn.close()
    assert sorted(found) == ["2024/q1.pdf"]
    assert found["2024/q1.pdf"].location == f"{server.url('reports/2024/q1.pdf')}"


def test_over_the_size_limit_at_fetch(server: samba.Samba, tmp_path: Path) -> None:
    conn = connector(server, exclude=[f"{SCRATCH}/*"], max_bytes=10)
    try:
        entry = listing(conn)["finance/budget.txt"]
        with pytest.raises(TooLarge):
            conn.fetch(entry, tmp_path)
    finally:
        conn.close()
    assert list(tmp_path.iterdir()) == []


def test_a_file_gone_since_listing_fails_alone(
    server: samba.Samba, scratch: tuple[Path, str], tmp_path: Path,
) -> None:
    folder, relative = scratch
    (folder / "brief.txt").write_bytes(b"short-lived\n")
    conn = connector(server, relative)
    try:
        entry = listing(conn)["brief.txt"]
        (folder / "brief.txt").unlink()
        with pytest.raises(UnreadableFile, match="gone"):
            conn.fetch(entry, tmp_path)
        with pytest.raises(UnreadableFile):
            conn.fetch(Entry("../escape.txt", "", "", "", "escape.txt"), tmp_path)
    finally:
        conn.close()


def test_wrong_password_is_a_source_error_without_the_password(server: samba.Samba) -> None:
    wrong = "Wrong-secret-value-42"
    conn = SmbConnector(server.url(), username=server.username, password=wrong)
    with pytest.raises(SourceError) as caught:
        list(conn.entries())
    conn.close()
    assert str(caught.value) == f"smb://127.0.0.1:{server.port}/{server.share}: logon failed"
    assert wrong not in repr(caught.value) and caught.value.__cause__ is None


def test_a_server_that_is_down(server: samba.Samba) -> None:
    port = samba.free_port()
    conn = SmbConnector(f"smb://127.0.0.1:{port}/docs", username=server.username,
                        password=server.password, timeout_s=5)
    with pytest.raises(SourceError, match="connection refused"):
        list(conn.entries())
    conn.close()


def test_a_missing_share_or_folder(server: samba.Samba) -> None:
    conn = SmbConnector(f"smb://127.0.0.1:{server.port}/nosuchshare", username=server.username,
                        password=server.password)
    with pytest.raises(SourceError, match="nosuchshare: no such share"):
        list(conn.entries())
    conn.close()
    conn = connector(server, "no/such/folder")
    with pytest.raises(SourceError, match="docs/no/such/folder: no such folder"):
        list(conn.entries())
    conn.close()
    conn = connector(server, "readme.txt")
    with pytest.raises(SourceError, match=r"readme\.txt: not a folder"):
        list(conn.entries())
    conn.close()


def test_a_closed_connector_reconnects(server: samba.Samba) -> None:
    conn = connector(server, "finance")
    try:
        first = listing(conn)
        conn.close()
        assert listing(conn) == first
    finally:
        conn.close()


@pytest.mark.parametrize("url", [
    "http://host/share", "smb://host", "smb://user:pw@host/share", "smb://host/share/../etc",
])
def test_urls_it_refuses(url: str) -> None:
    with pytest.raises(SourceError) as caught:
        SmbConnector(url, username="u", password="pw")
    assert "pw@" not in str(caught.value)


# The descriptor reader on its own, with descriptors Samba does not write.


def _sid_bytes(sid: str) -> bytes:
    parts = [int(p) for p in sid.split("-")[1:]]
    revision, authority, subs = parts[0], parts[1], parts[2:]
    return (struct.pack("<BB", revision, len(subs)) + authority.to_bytes(6, "big")
            + struct.pack(f"<{len(subs)}I", *subs))


def _descriptor(aces: list[tuple[int, int, int, str]] | None) -> bytes:
    owner = _sid_bytes("S-1-22-1-0")
    if aces is None:
        return struct.pack("<BBHIIII", 1, 0, 0x8000, 20, 0, 0, 0) + owner
    body = b""
    for ace_type, flags, mask, sid in aces:
        sid_b = _sid_bytes(sid)
        body += struct.pack("<BBHI", ace_type, flags, 8 + len(sid_b), mask) + sid_b
    acl = struct.pack("<BBHHH", 2, 0, 8 + len(body), len(aces), 0) + body
    return struct.pack("<BBHIIII", 1, 0, 0x8004, 20, 0, 0, 20 + len(owner)) + owner + acl


def test_descriptor_reading() -> None:
    data = _descriptor([(0, 0, 0x1F01FF, "S-1-5-21-1-2-3-1104"), (0, 0, 0x120089, "S-1-1-0")])
    owner, group, aces = parse_descriptor(data)
    assert owner == "S-1-22-1-0" and group is None
    assert aces == [(0, 0, 0x1F01FF, "S-1-5-21-1-2-3-1104"), (0, 0, 0x120089, "S-1-1-0")]
    assert readers(data) == ("sid:S-1-5-21-1-2-3-1104", "sid:S-1-1-0", "other")
    # A NULL DACL lets everyone in; an empty one lets no one in.
    assert readers(_descriptor(None)) == ("sid:S-1-1-0", "other")
    assert readers(_descriptor([])) == ()
    # Write-only and inherit-only grants are no read; GENERIC_READ is.
    assert readers(_descriptor([(0, 0, 0x2, "S-1-1-0"), (0, 0x08, 0x1F01FF, "S-1-22-2-5"),
                                (0, 0, 0x80000000, "S-1-5-11")])) == ("sid:S-1-5-11",)
    # After a deny nothing more is granted: fewer readers, never more.
    assert readers(_descriptor([(0, 0, 0x1, "S-1-5-21-1-2-3-512"), (1, 0, 0x1, "S-1-5-21-1-2-3-1105"),
                                (0, 0, 0x1, "S-1-1-0")])) == ("sid:S-1-5-21-1-2-3-512",)
    gid = grp.getgrgid(0).gr_name
    assert readers(_descriptor([(0, 0, 0x1, "S-1-22-2-0")])) == ("sid:S-1-22-2-0", f"group:{gid}")
    assert readers(_descriptor([(0, 0, 0x1, "S-1-22-2-0")]), resolve_unix_ids=False) == ("sid:S-1-22-2-0",)
