"""Archives (ingest/archives.py): members come out safely and within limits, each failing
alone; hostile archives are refused and nothing lands outside the folder they expand in.
Archives built here at run time with zipfile and tarfile, hostile ones included."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from core.errors import (
    CorruptDocument,
    EmptyDocument,
    EncryptedDocument,
    TooLarge,
    UnsafeContent,
    UnsupportedType,
)
from ingest.archives import ArchiveRefused, Limits, Member, expand, is_archive
from ingest.parse import unsupported

MB = 1024 * 1024
LIMITS = Limits(max_total_bytes=64 * MB, max_members=100, max_depth=3, max_ratio=200,
                max_member_bytes=16 * MB)


def make_zip(path: Path, members: dict[str, bytes], *, links: dict[str, str] | None = None,
             encrypted: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            archive.writestr(info, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16  # a symbolic link, as Info-ZIP stores one
            archive.writestr(info, target)
    for name in encrypted:
        _mark_encrypted(path, name)
    return path


def _mark_encrypted(path: Path, name: str) -> None:
    """Set the "encrypted" flag of a member, as an encrypting zip tool does (zipfile only
    reads encrypted members, it cannot write one)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        offset = archive.getinfo(name).header_offset
    data[offset + 6] |= 0x1  # the local header's flags
    central = data.find(b"PK\x01\x02")
    while central != -1:
        length = int.from_bytes(data[central + 28 : central + 30], "little")
        if data[central + 46 : central + 46 + length] == name.encode():
            data[central + 8] |= 0x1  # the central directory's flags
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


def make_tar(path: Path, members: dict[str, bytes], *, symlinks: dict[str, str] | None = None,
             hardlinks: dict[str, str] | None = None, mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for kind, links in ((tarfile.SYMTYPE, symlinks or {}), (tarfile.LNKTYPE, hardlinks or {})):
            for name, target in links.items():
                info = tarfile.TarInfo(name)
                info.type, info.linkname = kind, target
                archive.addfile(info)
    return path


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def by_name(members: list[Member]) -> dict[str, Member]:
    """The members by name (the first, where a name comes twice)."""
    named: dict[str, Member] = {}
    for member in members:
        named.setdefault(member.name, member)
    return named


def test_archive_names() -> None:
    assert all(is_archive(n) for n in ("a.zip", "A.ZIP", "b.tar", "c.tar.gz", "d.tgz", "e.tar.xz"))
    assert not any(is_archive(n) for n in ("a.gz", "report.docx", "zip.txt"))


def test_members_come_out_with_their_paths_and_hashes(tmp_path: Path) -> None:
    notes = b"# Notes\n\nThe audit found no issue.\n"
    archive = make_zip(tmp_path / "reports.zip", {
        "2024/q1.md": b"# Q1\n\nRevenue rose.\n", "notes.md": notes, "empty-dir/": b"",
        "__MACOSX/2024/._q1.md": b"\x00\x05\x16\x07", ".git/config": b"[core]\n",
    })
    members = by_name(expand(archive, tmp_path / "out", LIMITS, unsupported))
    assert set(members) == {"2024/q1.md", "notes.md"}  # not folders, not hidden files
    member = members["notes.md"]
    assert member.problem is None and member.path is not None
    assert member.path.read_bytes() == notes
    assert member.sha256 == hashlib.sha256(notes).hexdigest()
    assert member.path.name == "notes.md"  # the parser goes by the extension
    assert member.path.is_relative_to(tmp_path / "out")


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_hostile_paths_and_links_are_refused_and_nothing_lands_outside(
    tmp_path: Path, kind: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    good = {"ok.md": b"# Fine\n\nA normal member.\n"}
    hostile = {
        "../../escaped-up.md": b"# escaped\n",
        "a/../../escaped-mid.md": b"# escaped\n",
        str(outside / "escaped-absolute.md"): b"# escaped\n",
        "..\\escaped-backslash.md": b"# escaped\n",
        # Through the link below, on an extractor that follows links.
        "link/pwned.md": b"# pwned\n",
    }
    share = tmp_path / "share"
    share.mkdir()
    if kind == "zip":
        archive = make_zip(share / "evil.zip", {**good, **hostile}, links={"link": str(outside)})
    else:
        archive = make_tar(share / "evil.tar.gz", {**good, **hostile},
                           symlinks={"link": str(outside)}, hardlinks={"hard": "/etc/passwd"})
    before = files_under(tmp_path)
    scratch = tmp_path / "scratch"

    members = by_name(expand(archive, scratch, LIMITS, unsupported))

    assert members["ok.md"].problem is None
    for name in ("../../escaped-up.md", "a/../../escaped-mid.md", "..\\escaped-backslash.md"):
        refusal = members[name.replace("\\", "/")].problem
        assert isinstance(refusal, UnsafeContent) and "'..'" in str(refusal), name
        assert str(refusal).startswith("unsafe: ")
    absolute = members[str(outside / "escaped-absolute.md")].problem
    assert isinstance(absolute, UnsafeContent) and "absolute" in str(absolute)
    assert isinstance(members["link"].problem, UnsafeContent)
    assert "link" in str(members["link"].problem)
    if kind == "tar.gz":
        assert isinstance(members["hard"].problem, UnsafeContent)
    # The member under the link's name is just a file of the archive, kept inside.
    pwned = members["link/pwned.md"]
    assert pwned.path is not None and pwned.path.is_relative_to(scratch)
    # The file system: every new file is inside the scratch folder, none is a link.
    new = files_under(tmp_path) - before
    assert new and all(p.is_relative_to(scratch) and not p.is_symlink() for p in new), new
    assert list(outside.iterdir()) == []
    assert not list(tmp_path.parent.glob("escaped*")) and not list(tmp_path.glob("escaped*"))


def test_a_zip_bomb_is_refused_whole_before_anything_is_written(tmp_path: Path) -> None:
    bomb = make_zip(tmp_path / "bomb.zip", {"readme.md": b"# Hi\n\nHello.\n",
                                            "zeros.txt": bytes(50 * MB)})
    assert bomb.stat().st_size < 100_000  # 50 MB in 50 kB: a ratio of about 1000
    with pytest.raises(ArchiveRefused, match=r"times its compressed size.*zip bomb") as caught:
        expand(bomb, tmp_path / "out", LIMITS, unsupported)
    assert str(caught.value).startswith("too large: ")
    assert files_under(tmp_path / "out") == set()


def test_a_tar_bomb_is_stopped_as_it_expands(tmp_path: Path) -> None:
    # Under the per-file limit (16 MB), so it is extracted: the ratio stops it midway.
    bomb = make_tar(tmp_path / "bomb.tar.gz", {"zeros.txt": bytes(15 * MB)})
    with pytest.raises(ArchiveRefused, match="times its compressed size"):
        expand(bomb, tmp_path / "out", LIMITS, unsupported)


def test_total_size_and_member_count_limits(tmp_path: Path) -> None:
    random = {f"part-{n}.txt": os.urandom(MB) for n in range(3)}
    small = Limits(max_total_bytes=2 * MB, max_members=100, max_depth=3, max_ratio=200,
                   max_member_bytes=16 * MB)
    for archive in (make_zip(tmp_path / "big.zip", random), make_tar(tmp_path / "big.tgz", random)):
        with pytest.raises(ArchiveRefused, match="ENCLAVE_ARCHIVES__MAX_TOTAL_MB"):
            expand(archive, tmp_path / f"out-{archive.name}", small, unsupported)
    many = {f"n{n}.txt": b"note" for n in range(5)}
    few = Limits(max_total_bytes=64 * MB, max_members=3, max_depth=3, max_ratio=200,
                 max_member_bytes=16 * MB)
    for archive in (make_zip(tmp_path / "many.zip", many), make_tar(tmp_path / "many.tgz", many)):
        with pytest.raises(ArchiveRefused, match="members"):
            expand(archive, tmp_path / f"out-{archive.name}", few, unsupported)


def test_nested_archives_expand_to_the_depth_limit(tmp_path: Path) -> None:
    deepest = make_zip(tmp_path / "deepest.zip", {"bottom.md": b"# Bottom\n"})
    deep = make_tar(tmp_path / "deep.tar.gz", {"middle.md": b"# Middle\n",
                                               "deepest.zip": deepest.read_bytes()})
    outer = make_zip(tmp_path / "outer.zip", {"top.md": b"# Top\n",
                                              "sub/deep.tar.gz": deep.read_bytes()})
    two = Limits(max_total_bytes=64 * MB, max_members=100, max_depth=2, max_ratio=200,
                 max_member_bytes=16 * MB)
    members = by_name(expand(outer, tmp_path / "out", two, unsupported))
    assert members["sub/deep.tar.gz!/middle.md"].path is not None
    too_deep = members["sub/deep.tar.gz!/deepest.zip"].problem
    assert isinstance(too_deep, TooLarge) and "nested more than 2 deep" in str(too_deep)
    three = by_name(expand(outer, tmp_path / "out3", LIMITS, unsupported))
    bottom = three["sub/deep.tar.gz!/deepest.zip!/bottom.md"]
    assert bottom.path is not None and bottom.path.read_bytes() == b"# Bottom\n"
    # Inner archives are not documents: only their members are left on disk.
    assert not [p for p in files_under(tmp_path / "out3") if is_archive(p.name)]


def test_members_that_cannot_be_read_fail_alone(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name, as it should
        archive = make_zip(tmp_path / "mixed.zip", {
            "good.md": b"# Good\n", "song.wav": b"RIFF" + bytes(1000),
            "secret.md": b"# Secret\n", "broken.zip": b"PK\x03\x04 not really a zip",
        }, encrypted=("secret.md",))
        with zipfile.ZipFile(archive, "a") as again:
            again.writestr("good.md", b"# Another good\n")
    members = expand(archive, tmp_path / "out", LIMITS, unsupported)
    named = by_name(members)
    assert named["good.md"].path is not None
    assert named["good.md"].path.read_bytes() == b"# Good\n"  # the first of the two
    assert isinstance(named["song.wav"].problem, UnsupportedType)
    assert isinstance(named["secret.md"].problem, EncryptedDocument)
    assert isinstance(named["broken.zip"].problem, CorruptDocument)
    duplicates = [m for m in members if m.name == "good.md"]
    assert len(duplicates) == 2 and isinstance(duplicates[1].problem, CorruptDocument)
    # Unsupported members are not even extracted.
    assert not [p for p in files_under(tmp_path / "out") if p.suffix == ".wav"]


def test_a_member_over_the_file_limit_fails_alone(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tar", {"big.txt": os.urandom(2 * MB), "small.md": b"# S\n"},
                       mode="w")
    limits = Limits(max_total_bytes=64 * MB, max_members=100, max_depth=3, max_ratio=200,
                    max_member_bytes=MB)
    members = by_name(expand(archive, tmp_path / "out", limits, unsupported))
    assert isinstance(members["big.txt"].problem, TooLarge)
    assert members["small.md"].path is not None


def test_unreadable_and_empty_archives_fail_whole(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(os.urandom(2000))
    with pytest.raises(CorruptDocument, match="not a readable zip archive"):
        expand(garbage, tmp_path / "out1", LIMITS, unsupported)
    fake_tar = tmp_path / "fake.tar.gz"
    fake_tar.write_bytes(b"\x1f\x8b" + os.urandom(2000))
    with pytest.raises(CorruptDocument):
        expand(fake_tar, tmp_path / "out2", LIMITS, unsupported)
    empty = make_zip(tmp_path / "empty.zip", {"folder/": b""})
    with pytest.raises(EmptyDocument, match="no files"):
        expand(empty, tmp_path / "out3", LIMITS, unsupported)


def test_members_never_extracted_do_not_count_against_the_limits(tmp_path: Path) -> None:
    """A film beside the documents is skipped as a type no parser reads, not taken for a bomb."""
    archive = make_zip(tmp_path / "project.zip", {"plan.md": b"# Plan\n",
                                                  "walkthrough.mp4": bytes(50 * MB)})
    members = by_name(expand(archive, tmp_path / "out", LIMITS, unsupported))
    assert members["plan.md"].path is not None
    assert isinstance(members["walkthrough.mp4"].problem, UnsupportedType)
