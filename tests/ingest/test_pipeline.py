"""Ingestion end to end: real parser, real model, the embedded Qdrant engine, SQLite."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.container import Container
from core.errors import InputError, NotFound
from core.types import Chunk, Principal, make_chunk_id
from ingest.pipeline import Ingestor

ANYONE = Principal("anyone")


def _texts(container: Container, query: str, principal: Principal = ANYONE, k: int = 10) -> list[str]:
    return [h.chunk.text for h in container.searcher.search(query, principal, k)]


def test_samples_ingest_with_pages_offsets_and_payload(container: Container, samples):
    report = container.ingestor.ingest([samples["public"], samples["finance"]])
    assert report.count("failed") == 0, report.failed
    assert report.count("ingested") == 8
    hits = container.searcher.search("hotel limit per night", ANYONE, 3)
    top = hits[0].chunk
    assert top.meta["source"].endswith("expense-policy.pdf")
    assert top.page_start == 1 and top.page_end in (1, 2)
    assert "180 euros" in top.text
    # The chunk is a verbatim span of the document's extracted text.
    assert top.char_end - top.char_start == len(top.text)
    totals = container.registry.totals()
    assert totals["chunks"] == container.store.count() > 0
    assert container.ingestor.check() == []


def test_second_run_changes_nothing(container: Container, samples):
    container.ingestor.ingest([samples["public"]])
    before = container.store.count()
    again = container.ingestor.ingest([samples["public"]])
    assert again.count("unchanged") == len(again.files) == 6
    assert container.store.count() == before


def test_a_run_that_wrote_indexes_the_store_once(container: Container, samples,
                                                 monkeypatch: pytest.MonkeyPatch):
    calls: list[int] = []
    real = container.store.optimize
    monkeypatch.setattr(container.store, "optimize", lambda: calls.append(1) or real())
    container.ingestor.ingest([samples["public"]])
    assert calls == [1]
    container.ingestor.ingest([samples["public"]])  # all unchanged: nothing to index
    assert calls == [1]
    assert container.store.count() == container.registry.totals()["chunks"] > 0


def test_changed_file_replaces_its_old_version(container: Container, tmp_path: Path):
    doc = tmp_path / "policy.md"
    doc.write_text("# Parking\n\nThe staff car park closes at 20:00 on weekdays.\n")
    container.ingestor.ingest([doc])
    old = container.searcher.search("car park closes", ANYONE, 5)
    assert any("20:00" in h.chunk.text for h in old)

    doc.write_text("# Parking\n\nThe staff car park closes at 22:30 on weekdays.\n")
    report = container.ingestor.ingest([doc])
    assert report.files[0].status == "ingested"
    texts = _texts(container, "car park closes")
    assert any("22:30" in t for t in texts)
    assert not any("20:00" in t for t in texts)
    info = container.registry.find_by_source(str(doc.resolve()))
    assert info is not None
    assert container.store.versions_of(info.doc_id) == {info.active_version}
    assert container.store.count(info.doc_id) == info.chunk_count


def test_readers_see_old_version_until_new_one_is_complete(container: Container, tmp_path: Path):
    doc = tmp_path / "menu.txt"
    doc.write_text("The canteen serves lentil soup on Mondays.")
    container.ingestor.ingest([doc])
    doc.write_text("The canteen serves tomato soup on Mondays.")

    seen_during: list[list[str]] = []
    store = container.store
    original_upsert = store.upsert

    def upsert_then_read(points):  # type: ignore[no-untyped-def]
        original_upsert(points)
        # New chunks are in the store but not yet active: readers still see the old version.
        seen_during.append(_texts(container, "canteen soup Mondays"))

    store.upsert = upsert_then_read  # type: ignore[method-assign]
    try:
        container.ingestor.ingest([doc])
    finally:
        store.upsert = original_upsert  # type: ignore[method-assign]
    assert seen_during and all(
        any("lentil" in t for t in texts) and not any("tomato" in t for t in texts)
        for texts in seen_during
    )
    after = _texts(container, "canteen soup Mondays")
    assert any("tomato" in t for t in after) and not any("lentil" in t for t in after)


def test_groups_restrict_and_regrouping_updates_access(container: Container, samples):
    container.ingestor.ingest([samples["finance"]], ["finance"])
    assert _texts(container, "hotel limit per night", Principal("outsider", ("sales",))) == []
    assert _texts(container, "hotel limit per night", Principal("fin", ("finance",)))

    report = container.ingestor.ingest([samples["finance"]], ["sales"])
    assert {f.status for f in report.files} == {"updated"}
    assert _texts(container, "hotel limit per night", Principal("fin", ("finance",))) == []
    assert _texts(container, "hotel limit per night", Principal("s", ("sales",)))


def test_invalid_group_is_refused(container: Container, samples):
    with pytest.raises(InputError):
        container.ingestor.ingest([samples["public"]], ["*"])


def test_delete_removes_everywhere(container: Container, samples):
    container.ingestor.ingest([samples["public"]])
    handbook = samples["public"] / "handbook.md"
    info = container.ingestor.delete(str(handbook))
    assert container.store.count(info.doc_id) == 0
    assert container.registry.get(info.doc_id) is None
    assert not any("28 days" in t for t in _texts(container, "paid leave days"))
    with pytest.raises(NotFound):
        container.ingestor.delete(info.doc_id)


def test_vanished_file_fails_alone(container: Container, tmp_path: Path):
    keep = tmp_path / "keep.txt"
    keep.write_text("Visitors sign in at the front desk.")
    gone = tmp_path / "gone.txt"
    gone.write_text("This file disappears before it is read.")
    ingestor = container.ingestor
    original = ingestor.prepare_one

    def vanish_then_prepare(found, acl):  # type: ignore[no-untyped-def]
        if found.path.name == "gone.txt":
            gone.unlink()
        return original(found, acl)

    ingestor.prepare_one = vanish_then_prepare  # type: ignore[method-assign]
    report = ingestor.ingest([tmp_path])
    statuses = {Path(f.source).name: f for f in report.files}
    assert statuses["keep.txt"].status == "ingested"
    assert statuses["gone.txt"].status == "failed"
    assert "vanished" in (statuses["gone.txt"].reason or "")


KILL_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import core
    from core.container import Container
    from core.settings import Settings

    container = Container(Settings(data_dir=sys.argv[1]))
    store = container.store
    original = store.upsert
    calls = []

    def upsert_then_die(points):
        original(points)
        calls.append(1)
        if len(calls) == 2:
            os._exit(9)  # killed midway: chunks written, version never activated

    store.upsert = upsert_then_die
    container.ingestor.ingest([sys.argv[2]])
    """
)


def test_killed_run_is_repaired_by_the_next(tmp_path: Path, samples, real_embedder):
    data = tmp_path / "data"
    docs = tmp_path / "docs"
    shutil.copytree(samples["public"], docs)
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    env_path = str(Path(__file__).resolve().parents[2])
    killed = subprocess.run(
        [sys.executable, str(script), str(data), str(docs)],
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=600,
    )
    assert killed.returncode == 9, killed.stderr.decode()[-2000:]

    from core.settings import Settings

    container = Container(Settings(data_dir=data), embedder=real_embedder)
    try:
        # Before repair the store holds chunks of a version the registry never activated.
        assert container.ingestor.check() != []
        report = container.ingestor.ingest([docs])
        assert report.repaired >= 1
        assert report.count("failed") == 0
        assert container.ingestor.check() == []
        assert container.store.count() == container.registry.totals()["chunks"]
        assert len(report.files) == 6
    finally:
        container.close()


def test_display_names_are_paths_relative_to_what_was_ingested(container: Container,
                                                                tmp_path: Path):
    share = tmp_path / "share"
    (share / "sub").mkdir(parents=True)
    (share / "sub" / "notes.md").write_text("# Vault\n\nThe juniper vault keeps the deeds.\n")
    (share / "top.txt").write_text("The yarrow desk answers travel questions.")
    single = tmp_path / "elsewhere" / "memo.txt"
    single.parent.mkdir()
    single.write_text("The kestrel room is booked through the front desk.")
    assert not container.ingestor.ingest([share, single]).failed

    expected = {share / "sub" / "notes.md": "sub/notes.md", share / "top.txt": "top.txt",
                single: "memo.txt"}
    for path, display in expected.items():
        info = container.registry.find_by_source(str(path.resolve()))
        assert info is not None and info.display_name == display
        assert info.active_version is not None
        ids = [make_chunk_id(info.doc_id, info.active_version, n) for n in range(info.chunk_count)]
        chunks = container.store.retrieve(ids)
        assert chunks and {(c.display, c.meta["display"]) for c in chunks} == {(display, display)}
    hits = container.searcher.search("juniper vault deeds", ANYONE, 1)
    assert hits[0].chunk.display == "sub/notes.md"


def test_display_names_of_what_was_stored_before_them_are_file_names(container: Container):
    registry = container.registry
    registry.begin_version("d1", "/srv/share/hr/old.pdf", "v1", "Old", 1)
    registry.activate("d1", "v1", 1, (), "Old")
    info = registry.get("d1")
    assert info is not None and info.display_name == "old.pdf"
    old = Chunk("c", "d1", "v1", "text", 1, 1, 0, 4,
                {"source": "/srv/share/hr/old.pdf", "display": None})
    assert old.display == "old.pdf"


def test_ingestor_builds_from_container(container: Container):
    assert isinstance(container.ingestor, Ingestor)
