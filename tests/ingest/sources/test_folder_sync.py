"""A folder source synced as jobs on the real pipeline (inline queue, SQLite, the real
embedder and store): permissions carried across by a mapping, incremental re-syncs,
permission changes without re-embedding, deletions that follow the source, a source that
cannot be listed deleting nothing, one sync at a time, and schedules."""

from __future__ import annotations

import grp
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.container import Container
from core.errors import AccessDenied, InputError, SyncRunning
from core.jobs import DELETED, DONE, FAILED, ITEM_DONE, UNCHANGED
from core.ports import Embedder
from core.settings import Settings
from core.sources import Source
from core.types import Principal

FINANCE, ENGINEERING = grp.getgrnam("adm").gr_gid, grp.getgrnam("staff").gr_gid
MAPPING = {"group:adm": ("finance",), "group:staff": ("engineering",), "other": ("@public",)}


@pytest.fixture
def share(tmp_path: Path) -> Path:
    root = tmp_path / "share"
    (root / "finance").mkdir(parents=True)
    (root / "eng").mkdir()
    write(root / "finance" / "budget.txt", "The marketing budget for Lisbon is 40,000 euros.",
          FINANCE, 0o640)
    write(root / "eng" / "design.txt", "The turbine design review is on Thursday.",
          ENGINEERING, 0o640)
    write(root / "canteen.txt", "The canteen serves soup of the day at noon.", 0, 0o644)
    write(root / "private.txt", "Root's own notes about the rotation schedule.", 0, 0o600)
    return root


def write(path: Path, text: str, gid: int, mode: int) -> None:
    path.write_text(text, encoding="utf-8")
    os.chown(path, -1, gid)
    path.chmod(mode)


def add(c: Container, share: Path, **extra: object) -> Source:
    return c.sources.add(Source(name="hr-share", kind="folder", location=str(share),
                                mapping=MAPPING, **extra))  # type: ignore[arg-type]



def sources_found(c: Container, query: str, *groups: str) -> set[str]:
    hits = c.searcher.search(query, Principal("someone", tuple(groups)), k=10)
    return {Path(c.registry.get(h.chunk.doc_id).source).name  # type: ignore[union-attr]
            for h in hits}


def items(c: Container, job_id: str) -> dict[str, tuple[str, str | None]]:
    return {Path(i.source).name: (i.status, i.reason)
            for i in c.jobs.items(job_id, None, limit=1000)}


def test_permissions_follow_the_share_and_unmapped_readers_get_nothing(
    c: Container, share: Path
) -> None:
    add(c, share)
    job = c.job_runner().sync_source("hr-share")
    assert c.jobs.get(job.job_id).status == DONE
    listed = items(c, job.job_id)
    assert {k: v[0] for k, v in listed.items()} == {
        "budget.txt": ITEM_DONE, "design.txt": ITEM_DONE, "canteen.txt": ITEM_DONE,
        "private.txt": FAILED}
    assert "unmapped" in (listed["private.txt"][1] or "")
    assert "budget.txt" in sources_found(c, "marketing budget Lisbon", "finance")
    assert "budget.txt" not in sources_found(c, "marketing budget Lisbon", "engineering")
    assert "canteen.txt" in sources_found(c, "canteen soup", "engineering")  # other -> public
    assert "private.txt" not in sources_found(c, "rotation schedule notes", "finance")

    # Moved to another group on the share: the next sync moves the access, and embeds nothing.
    budget = c.registry.find_by_source(str((share / "finance" / "budget.txt").resolve()))
    assert budget is not None
    os.chown(share / "finance" / "budget.txt", -1, ENGINEERING)
    job = c.job_runner().sync_source("hr-share")
    listed = items(c, job.job_id)
    assert listed["budget.txt"][0] == ITEM_DONE
    assert {listed[n][0] for n in ("design.txt", "canteen.txt")} == {UNCHANGED}
    assert "budget.txt" in sources_found(c, "marketing budget Lisbon", "engineering")
    assert "budget.txt" not in sources_found(c, "marketing budget Lisbon", "finance")
    after = c.registry.get(budget.doc_id)
    assert after is not None and after.active_version == budget.active_version
    assert after.groups == ("engineering",)


def test_an_unchanged_resync_fetches_nothing_and_a_deleted_file_leaves(
    c: Container, share: Path
) -> None:
    add(c, share)
    c.job_runner().sync_source("hr-share")
    again = c.job_runner().sync_source("hr-share")
    listed = items(c, again.job_id)
    assert {listed[n][0] for n in ("budget.txt", "design.txt", "canteen.txt")} == {UNCHANGED}

    (share / "canteen.txt").unlink()
    (share / "eng" / "design.txt").write_text("The turbine design review moved to Friday.",
                                              encoding="utf-8")
    job = c.job_runner().sync_source("hr-share")
    listed = items(c, job.job_id)
    assert listed["canteen.txt"] == (DELETED, "gone from the source")
    assert listed["design.txt"][0] == ITEM_DONE
    assert "canteen.txt" not in sources_found(c, "canteen soup", "engineering")
    assert c.registry.find_by_source(str((share / "canteen.txt").resolve())) is None


def test_a_source_that_cannot_be_listed_deletes_nothing_and_says_why(
    c: Container, share: Path, tmp_path: Path
) -> None:
    add(c, share)
    c.job_runner().sync_source("hr-share")
    share.rename(tmp_path / "away")
    job = c.jobs.get(c.job_runner().sync_source("hr-share").job_id)
    assert job.status == DONE and job.total == 0
    assert job.error and job.error.startswith("nothing deleted:") and "no such folder" in job.error
    (tmp_path / "away").rename(share)
    assert "canteen.txt" in sources_found(c, "canteen soup")


def test_links_out_of_the_allowed_roots_are_not_followed(
    tmp_path: Path, real_embedder: Embedder, share: Path
) -> None:
    secret = tmp_path / "outside" / "shadow.txt"
    secret.parent.mkdir()
    write(secret, "The vault combination is 31-07-44.", 0, 0o644)
    (share / "vault.txt").symlink_to(secret)
    settings = Settings(data_dir=tmp_path / "data", jobs={"mode": "inline",
                                                          "allowed_roots": [str(share)]})
    c = Container(settings, embedder=real_embedder)
    try:
        add(c, share)
        job = c.job_runner().sync_source("hr-share")
        assert "vault.txt" not in items(c, job.job_id)
        for groups in ((), ("finance",), ("engineering",)):
            assert not {"vault.txt", "shadow.txt"} & sources_found(c, "vault combination",
                                                                    *groups)
        # Nor can a folder outside the roots be added (the CLI and API confine it).
        with pytest.raises(AccessDenied):
            c.job_runner().confine(Path("/etc"))
    finally:
        c.close()


def test_two_sources_of_one_folder_are_refused(c: Container, share: Path) -> None:
    add(c, share)
    with pytest.raises(InputError, match=r"syncs .* already"):
        c.sources.add(Source(name="again", kind="folder", location=str(share), mapping=MAPPING))


def test_a_source_is_not_removed_while_it_syncs(c: Container, share: Path) -> None:
    from ingest.sources.manage import remove_source

    add(c, share)
    c.job_runner().sync_source("hr-share")
    holder = c.jobs.create("admin", ["source:hr-share"], (), True)
    c.sources.claim("hr-share", holder)
    running = lambda job_id: not c.jobs.is_finished(job_id)  # noqa: E731
    with pytest.raises(SyncRunning, match="cancel it first"):
        remove_source(c.sources, c.audit, "admin", "cli", "hr-share", c.ingestor.delete_id,
                      running)
    c.jobs.cancel(holder)
    assert remove_source(c.sources, c.audit, "admin", "cli", "hr-share", c.ingestor.delete_id,
                         running) == 3
    assert "canteen.txt" not in sources_found(c, "canteen soup")


def test_one_sync_of_a_source_at_a_time(c: Container, share: Path) -> None:
    add(c, share)
    holder = c.jobs.create("admin", ["source:hr-share"], (), True)  # planning, unfinished
    c.sources.claim("hr-share", holder)
    with pytest.raises(SyncRunning, match=holder):
        c.sources.claim("hr-share", c.jobs.create("admin", ["source:hr-share"], (), True))
    with pytest.raises(SyncRunning):
        c.job_runner().sync_source("hr-share")
    c.jobs.cancel(holder)
    assert c.job_runner().sync_source("hr-share").status == DONE


def test_due_syncs_follow_the_schedule(c: Container, share: Path) -> None:
    add(c, share, every_s=3600)
    c.sources.add(Source(name="by-hand", kind="folder", location=str(share / "eng"),
                         mapping=MAPPING))
    assert c.sources.due() == ["hr-share"]
    [job] = c.job_runner().sync_due()
    assert c.jobs.get(job.job_id).status == DONE
    assert c.sources.due() == []
    later = datetime.now(UTC) + timedelta(hours=1, minutes=1)
    assert c.sources.due(later) == ["hr-share"]


def test_a_file_whose_readers_are_no_longer_mapped_leaves(c: Container, share: Path) -> None:
    add(c, share)
    c.job_runner().sync_source("hr-share")
    design = share / "eng" / "design.txt"
    assert "design.txt" in sources_found(c, "turbine design review", "engineering")
    design.chmod(0o600)  # now only its owner (root, unmapped) may read it
    job = c.job_runner().sync_source("hr-share")
    status, reason = items(c, job.job_id)["design.txt"]
    assert status == DELETED and reason and reason.startswith("unmapped:")
    assert "design.txt" not in sources_found(c, "turbine design review", "engineering")


def test_a_new_mapping_reaches_documents_at_the_next_sync_without_re_embedding(
    c: Container, share: Path
) -> None:
    from ingest.sources.manage import edit_source

    add(c, share)
    first = c.job_runner().sync_source("hr-share")
    assert items(c, first.job_id)["private.txt"][0] == FAILED
    budget = c.registry.find_by_source(str((share / "finance" / "budget.txt").resolve()))
    assert budget is not None

    with pytest.raises(InputError, match="needs a mapping"):
        edit_source(c.sources, c.audit, "admin", "cli", "hr-share", {"mapping": {}})
    edit_source(c.sources, c.audit, "admin", "cli", "hr-share", {"mapping": {
        **MAPPING, "group:adm": ("finance", "audit"), "user:root": ("admins",)}})
    job = c.job_runner().sync_source("hr-share")
    listed = items(c, job.job_id)
    assert listed["private.txt"][0] == ITEM_DONE  # its owner is mapped now
    assert listed["budget.txt"][0] == ITEM_DONE and listed["canteen.txt"][0] == UNCHANGED
    assert "budget.txt" in sources_found(c, "marketing budget Lisbon", "audit")
    assert "private.txt" in sources_found(c, "rotation schedule notes", "admins")
    after = c.registry.get(budget.doc_id)
    assert after is not None and after.active_version == budget.active_version
    assert after.groups == ("admins", "audit", "finance")  # its owner, root, reads it too


def test_a_change_of_embedder_re_embeds_at_the_next_sync(
    c: Container, share: Path, tmp_path: Path, fp32_embedder: Embedder
) -> None:
    add(c, share)
    c.job_runner().sync_source("hr-share")
    assert set(c.registry.embedders()) == {c.embedder.fingerprint}
    settings = c.settings
    c.close()
    # Same files, same signals: only the embedder changed. Each entry is fetched again and
    # its vectors remade; nothing else about it changes.
    fp32 = Container(settings, embedder=fp32_embedder)
    try:
        job = fp32.job_runner().sync_source("hr-share")
        listed = items(fp32, job.job_id)
        assert {listed[n][0] for n in ("budget.txt", "design.txt", "canteen.txt")} == {ITEM_DONE}
        assert fp32.registry.embedders() == {fp32_embedder.fingerprint: 3}
        assert "budget.txt" in sources_found(fp32, "marketing budget Lisbon", "finance")
        again = fp32.job_runner().sync_source("hr-share")
        listed = items(fp32, again.job_id)
        assert {listed[n][0] for n in ("budget.txt", "design.txt", "canteen.txt")} == {UNCHANGED}
    finally:
        fp32.close()
