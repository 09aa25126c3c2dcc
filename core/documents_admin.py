"""What the admin console reads and changes of one document beyond the registry's daily
use: its versions, the job item that last wrote it, and a change of its groups applied to
the registry and the store as one step."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import false, select, update

from core.db import Database
from core.errors import NotFound
from core.jobs import Item, ItemRow, item_of
from core.names import validate_groups
from core.registry import DocumentRow, VersionRow


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: str
    status: str
    chunk_count: int
    page_count: int | None
    error: str | None
    embedder: str | None
    created_at: datetime
    activated_at: datetime | None


def versions(db: Database, doc_id: str) -> list[VersionInfo]:
    """Every version the registry holds of the document, newest first."""
    with db.session() as s:
        rows = s.scalars(select(VersionRow).where(VersionRow.doc_id == doc_id)
                         .order_by(VersionRow.id.desc())).all()
        return [VersionInfo(r.version, r.status, r.chunk_count, r.page_count, r.error,
                            r.embedder, r.created_at, r.activated_at) for r in rows]


def last_item(db: Database, doc_id: str) -> Item | None:
    """The job item that last worked on the document (its job, outcome and reason)."""
    with db.session() as s:
        row = s.scalars(select(ItemRow).where(ItemRow.doc_id == doc_id)
                        .order_by(ItemRow.item_id.desc()).limit(1)).first()
        return item_of(row) if row is not None else None


def regroup(db: Database, doc_id: str, groups: Sequence[str],
            apply: Callable[[tuple[str, ...]], None],
            ) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """Set the document's groups: ``apply(groups)`` (the store's chunks) and the registry,
    under the document row's lock, so that concurrent changes end in one state, the last
    one's, in both places. Returns its source and the groups before and after."""
    checked = validate_groups(groups)
    with db.session() as s:
        if s.get_bind().dialect.name == "sqlite":  # its one write lock, taken now
            s.execute(update(DocumentRow).where(false()).values(title=""))
        row = s.get(DocumentRow, doc_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no document {doc_id}")
        before = row.groups
        apply(checked)
        row.groups_json = json.dumps(list(checked))
        row.updated_at = datetime.now(UTC)
        return row.source, before, checked
