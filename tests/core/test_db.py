"""Schema migrations (Alembic) on SQLite and PostgreSQL, including databases made before them."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from sqlalchemy import create_engine, inspect, text

from core.db import Database
from core.jobs import JobBook
from core.registry import Registry

HEAD = "0011"


def _revision(url: str) -> str:
    engine = create_engine(url)
    with engine.connect() as conn:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    return str(revision)


def test_a_new_sqlite_database_is_migrated_to_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    db = Database(url)
    tables = set(inspect(db.engine).get_table_names())
    assert {"documents", "document_versions", "jobs", "job_items", "dead_letters", "users",
            "api_keys", "sources", "source_entries"} <= tables
    db.close()
    assert _revision(url) == HEAD
    Database(url).close()  # opening again is a no-op
    assert _revision(url) == HEAD


def test_a_database_from_before_migrations_is_stamped_and_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    db = Database(url)
    Registry(db).record_failure("d1", "/docs/a.pdf", None, "corrupt: test")
    with db.engine.begin() as conn:  # back to what the first release left: no jobs, no stamp
        for table in ("answer_feedback", "eval_results", "eval_runs", "golden_questions",
                      "source_entries", "sources",
                      "audit_texts", "audit_head", "audit_records", "conversation_turns",
                      "conversations", "api_keys", "users", "dead_letters",
                      "job_items", "jobs", "alembic_version"):
            conn.execute(text(f"DROP TABLE {table}"))
        # The first release's documents had no display name either (migration 0007 adds it).
        conn.execute(text("ALTER TABLE documents DROP COLUMN display_name"))
        # Nor pages read by OCR (migration 0008).
        conn.execute(text("ALTER TABLE document_versions DROP COLUMN ocr_json"))
        # Nor the embedder that wrote each version (migration 0011).
        conn.execute(text("ALTER TABLE document_versions DROP COLUMN embedder"))
    db.close()

    db = Database(url)
    assert _revision(url) == HEAD
    info = Registry(db).get("d1")
    assert info is not None and info.last_error == "corrupt: test"
    assert JobBook(db).jobs() == []
    db.close()


def _open(url: str) -> str:
    db = Database(url)
    db.close()
    return "ok"


def test_processes_starting_together_migrate_postgres_once(pg_url: str) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        assert pool.map(_open, [pg_url] * 4) == ["ok"] * 4
    assert _revision(pg_url) == HEAD
    db = Database(pg_url)
    book = JobBook(db)
    job_id = book.create("alice", ["/share"], ["hr"], False)
    assert book.get(job_id).owner == "alice"
    db.close()


def test_verify_mode_refuses_a_schema_that_is_behind_and_accepts_head(tmp_path: Path) -> None:
    import pytest

    from core.errors import RegistryError

    url = f"sqlite:///{tmp_path / 'v.db'}"
    with pytest.raises(RegistryError, match=r"none \(empty\).*enclave db upgrade"):
        Database(url, migrate=False)
    Database(url).close()
    verified = Database(url, migrate=False)
    assert verified.revisions() == (HEAD, HEAD)
    verified.close()
    engine = create_engine(url)  # as a database left by the previous version would be
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0004'"))
    engine.dispose()
    with pytest.raises(RegistryError, match=r"revision 0004.*needs 0011"):
        Database(url, migrate=False)
    assert _revision(url) == "0004"  # verifying never migrates
