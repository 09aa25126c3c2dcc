"""The metadata database: SQLite embedded, PostgreSQL deployed; its schema moves by Alembic.

Every process that opens the database brings the schema to the newest revision first,
under a lock (an advisory lock in PostgreSQL, a file lock beside a SQLite file), so
workers that start together do not race each other through a migration. A database
made before migrations existed (its tables but no ``alembic_version``) is stamped with
the first revision, which describes exactly those tables, and then upgraded.

Deployments turn that off (``migrate="verify"``, from ``ENCLAVE_DATABASE_MIGRATE``): a
one-shot ``enclave db upgrade`` migrates, and every other process only checks that the
schema is the one its code was written for, and refuses to start on an older one.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from core.errors import RegistryError

MIGRATIONS = Path(__file__).with_name("migrations")
FIRST_REVISION = "0001"
# Any fixed number: the PostgreSQL advisory lock that serialises migrations.
_MIGRATION_LOCK = 0x656E636C


class Base(DeclarativeBase):
    pass


class Database:
    def __init__(self, url: str, migrate: bool = True) -> None:
        self.url = url
        try:
            self.engine: Engine = create_engine(url, future=True, pool_pre_ping=True)
            if url.startswith("sqlite"):
                event.listen(self.engine, "connect", _sqlite_pragmas)
            if migrate:
                self._migrate()
            else:
                self._verify()
        except SQLAlchemyError as exc:
            raise RegistryError(f"cannot open the database: {exc}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise RegistryError(f"database: {exc}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def close(self) -> None:
        self.engine.dispose()

    # -- schema ------------------------------------------------------------------------------

    def revisions(self) -> tuple[str | None, str]:
        return revisions(self.engine)

    def _verify(self) -> None:
        current, head = revisions(self.engine)
        if current != head:
            raise RegistryError(
                f"the database schema is at revision {current or 'none (empty)'}, this version "
                f"of enclave needs {head}: run `enclave db upgrade` first"
            )

    def _migrate(self) -> None:
        from alembic import command

        with self._migration_lock() as conn:
            config = _alembic_config(conn)
            tables = set(inspect(conn).get_table_names())
            if "documents" in tables and "alembic_version" not in tables:
                command.stamp(config, FIRST_REVISION)
            command.upgrade(config, "head")
            conn.commit()

    @contextmanager
    def _migration_lock(self) -> Iterator[Connection]:
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
                try:
                    yield conn
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                    conn.commit()
            return
        database = self.engine.url.database
        lock_path = Path(f"{database}.migrate.lock") if database and database != ":memory:" else None
        if lock_path is None:
            with self.engine.connect() as conn:
                yield conn
            return
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                with self.engine.connect() as conn:
                    yield conn
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def revisions(engine: Engine) -> tuple[str | None, str]:
    """(the database's schema revision, None when empty; the newest this code knows)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision(), head


def _alembic_config(conn: Connection):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # env.py runs on this connection rather than opening one of its own.
    config.attributes["connection"] = conn
    return config


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # WAL lets a search read while an ingest writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # SQLite's own lower() folds ASCII only: "Über" would not find "über". Python's folds
    # every script, as PostgreSQL's does.
    dbapi_connection.create_function("lower", 1, _lower, deterministic=True)


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value
