"""Alembic environment: runs on the connection core.db hands over (see Database._migrate)."""

from __future__ import annotations

from alembic import context

from core import conversations, jobs, registry, sources, users  # noqa: F401 - tables join the metadata
from core.db import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("enclave migrations run through core.db.Database, which passes a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
