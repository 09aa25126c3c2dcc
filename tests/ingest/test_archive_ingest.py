"""Archives through the real ingest path (parser, model, embedded Qdrant, SQLite): each
member is a document whose source names the archive and the member, with the archive's
access; an unchanged archive changes nothing, a member taken out leaves the index, a
job's sync keeps members, and hostile archives are refused with a reason."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

import pytest

from core.container import Container
from core.jobs import DELETED, DONE, UNCHANGED
from core.ports import Embedder
from core.settings import Settings
from core.types import Principal, make_doc_id
from tests.ingest.test_archives import files_under, make_tar, make_zip

FINANCE = Principal("ana", ("finance",))
OUTSIDER = Principal("bob", ("sales",))
Q1 = b"# Q1 report\n\nThe cold storage budget rose to 41,000 euros in the first quarter.\n"
NOTES = b"# Board notes\n\nThe board approved the new loading dock in Rotterdam.\n"
MINUTES = b"# Minutes\n\nThe warehouse in Tilburg switches to night shifts from May.\n"


@pytest.fixture
def inline(tmp_path: Path, real_embedder: Embedder):  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "data", jobs={"mode": "inline"})
    c = Container(settings, embedder=real_embedder)
    yield c
    c.close()


def _reports(path: Path, *, notes: bool = True) -> Path:
    inner = make_tar(path.parent / "inner.tar.gz", {"minutes.md": MINUTES})
    members = {"2024/q1.md": Q1, "deep/inner.tar.gz": inner.read_bytes(),
               "../escape.md": b"# Escaped\n\nWritten outside the share.\n"}
    if notes:
        members["notes.md"] = NOTES
    inner.unlink()
    return make_zip(path, members)


def _sources(c: Container, query: str, principal: Principal) -> list[str]:
    return [h.chunk.meta["source"] for h in c.searcher.search(query, principal, 5)]


def test_members_are_documents_named_by_archive_and_path(inline: Container, tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    reports = _reports(share / "reports.zip")
    bomb = make_zip(share / "bomb.zip", {"zeros.txt": bytes(50 * 1024 * 1024)})
    before = files_under(tmp_path) - files_under(tmp_path / "data")
    base = str(share.resolve() / "reports.zip") + "!/"

    report = inline.ingestor.ingest([share], ["finance"])

    by_source = {f.source: f for f in report.files}
    assert set(by_source) == {base + "2024/q1.md", base + "notes.md", base + "../escape.md",
                              base + "deep/inner.tar.gz!/minutes.md", str(bomb.resolve())}
    for name in ("2024/q1.md", "notes.md", "deep/inner.tar.gz!/minutes.md"):
        assert by_source[base + name].status == "ingested", by_source[base + name]
    assert (by_source[base + "../escape.md"].reason or "").startswith("unsafe: ")
    assert (by_source[str(bomb.resolve())].reason or "").startswith("too large: ")
    q1 = inline.registry.find_by_source(base + "2024/q1.md")
    assert q1 is not None and q1.doc_id == make_doc_id(base + "2024/q1.md")
    assert q1.display_name == "reports.zip!/2024/q1.md" and q1.groups == ("finance",)
    # Search finds members for those the archive was for, and only for them.
    assert _sources(inline, "cold storage budget first quarter", FINANCE)[0] == base + "2024/q1.md"
    assert _sources(inline, "night shifts warehouse Tilburg", FINANCE)[0] == (
        base + "deep/inner.tar.gz!/minutes.md")
    assert _sources(inline, "cold storage budget first quarter", OUTSIDER) == []
    # Nothing was written outside the data folder, and the scratch copies are gone.
    assert files_under(tmp_path) - files_under(tmp_path / "data") == before
    assert files_under(inline.settings.resolved_data_dir / "scratch") == set()
    assert inline.ingestor.check() == []

    again = inline.ingestor.ingest([share], ["finance"])
    assert [f.status for f in again.files if f.source.startswith(base)
            and "escape" not in f.source] == ["unchanged"] * 3

    _reports(reports, notes=False)  # the same archive, without notes.md
    third = inline.ingestor.ingest([reports], ["finance"])
    assert base + "notes.md" not in {f.source for f in third.files}
    assert inline.registry.find_by_source(base + "notes.md") is None
    assert inline.store.count(make_doc_id(base + "notes.md")) == 0
    assert [f.status for f in third.files if f.source == base + "2024/q1.md"] == ["unchanged"]
    assert _sources(inline, "board approved loading dock Rotterdam", FINANCE)[:1] != [
        base + "notes.md"]
    assert inline.ingestor.check() == []


def test_a_job_runs_an_archive_as_one_item_and_its_sync_keeps_the_members(
    inline: Container, tmp_path: Path
) -> None:
    share = tmp_path / "share"
    share.mkdir()
    reports = _reports(share / "reports.zip")
    (share / "plain.md").write_text("# Plain\n\nA file beside the archive.\n")
    base = str(reports.resolve()) + "!/"
    runner = inline.job_runner()

    first = runner.submit([share], ["finance"])
    assert first.status == "done" and first.counts[DONE] == 2  # the archive and plain.md
    item = next(i for i in inline.jobs.items(first.job_id) if i.source == str(reports.resolve()))
    assert item.chunks > 0
    assert item.reason and item.reason.startswith("1 of 4 archive members failed, e.g. ../escape.md")

    second = runner.submit([share], ["finance"], sync=True)
    assert second.counts.get(DELETED, 0) == 0 and second.counts[UNCHANGED] == 2
    assert inline.registry.find_by_source(base + "2024/q1.md") is not None

    reports.unlink()
    third = runner.submit([share], ["finance"], sync=True)
    assert third.counts[DELETED] == 4  # every member the archive had, the failed one too
    assert inline.registry.find_by_source(base + "2024/q1.md") is None
    assert inline.ingestor.check() == []


def test_an_archive_that_breaks_keeps_its_members_until_it_reads_again(
    inline: Container, tmp_path: Path
) -> None:
    archive = make_zip(tmp_path / "handbook.zip", {"leave.md": b"# Leave\n\n30 days of leave.\n"})
    source = str(archive.resolve())
    assert not inline.ingestor.ingest([archive]).failed
    archive.write_bytes(b"PK\x03\x04 cut off in transfer")

    broken = inline.ingestor.ingest([archive])
    assert [(f.source, f.status) for f in broken.files] == [(source, "failed")]
    assert (broken.files[0].reason or "").startswith("corrupt: not a readable zip archive")
    assert inline.registry.find_by_source(source + "!/leave.md") is not None  # still searchable

    with zipfile.ZipFile(archive, "w") as fixed:
        fixed.writestr("leave.md", "# Leave\n\n30 days of leave.\n")
    fixed_report = inline.ingestor.ingest([archive])
    assert [f.status for f in fixed_report.files] == ["unchanged"]
    assert inline.registry.find_by_source(source) is None  # the failure is forgotten
    assert inline.registry.totals()["failed"] == 0


def test_tar_members_keep_tar_paths(inline: Container, tmp_path: Path) -> None:
    archive = tmp_path / "export.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(_write(tmp_path / "src" / "a" / "policy.md", "# Policy\n\nBadges are personal.\n"),
                arcname="a/policy.md")
    report = inline.ingestor.ingest([archive])
    assert [(f.source, f.status) for f in report.files] == [
        (str(archive.resolve()) + "!/a/policy.md", "ingested")]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
