"""What the admin console's health view shows: the readiness checks, the counts, the disk
used and the models in use. Each figure that cannot be read says why, instead of failing
the whole view: the view matters most when something is down."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text

from core.container import Container
from core.errors import one_line
from serve.http.health import queue_depth, readiness

T = TypeVar("T")


def overview(container: Container) -> dict[str, Any]:
    from ingest.upkeep import disagreements

    c = container
    settings = c.settings
    checks = readiness(c)
    problems: dict[str, str] = {}

    def read(name: str, fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - a figure reports, it never raises
            problems[name] = f"unavailable: {one_line(exc)}"
            return None

    totals = read("registry", c.registry.totals) or {}
    items = read("jobs", c.jobs.item_totals) or {}
    store = read("store", lambda: _store_figures(c, disagreements))
    depth = None
    if settings.jobs.mode == "celery":
        depth = read("broker", lambda: queue_depth(settings.jobs.broker_url, settings.jobs.queue))
    return {
        "ready": all(v == "ok" for v in checks.values()),
        "checks": checks,
        "counts": {
            "documents": totals.get("documents"),
            "chunks": totals.get("chunks"),
            "stored_chunks": store["count"] if store else None,
            "failed_documents": totals.get("failed"),
            "failed_items": items.get("failed"),
            "open_items": (sum(items.get(s, 0) for s in ("pending", "queued", "running"))
                           if items else None),
            "queue_depth": depth,
        },
        "disagreements": store["disagreements"] if store else [],
        "disk_bytes": {
            "store": read("store_disk", lambda: _store_bytes(c)),
            "database": read("database_disk", lambda: _database_bytes(c)),
            "uploads": read("uploads_disk", lambda: _folder_bytes(settings.resolved_upload_dir)),
        },
        "models": {
            "answers": (settings.llm.model if settings.answer.mode == "generative"
                        else "extractive (no model)"),
            "llm_mode": settings.llm.mode,
            "embedder": c.embedder.fingerprint,
        },
        "problems": problems,
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _store_figures(c: Container, disagreements: Callable[..., list[str]]) -> dict[str, Any]:
    with c.store.session():
        return {"count": c.store.count(), "disagreements": disagreements(c.registry, c.store)}


def _store_bytes(c: Container) -> int | None:
    """The embedded store's folder; None for a Qdrant server (its disk is the server's)."""
    folder = {"edge": "qdrant-edge", "local": "qdrant-local"}.get(c.settings.qdrant.mode)
    return _folder_bytes(c.data_dir / folder) if folder else None


def _database_bytes(c: Container) -> int:
    engine = c.database.engine
    if engine.dialect.name == "sqlite":
        path = Path(engine.url.database or "")
        return sum(_used(p) for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
                   if p.exists())
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += _used(Path(root) / name)
            except OSError:
                pass  # removed while counted
    return total


def _used(path: Path) -> int:
    """The disk a file takes, as du counts it: the store's files are sparse (186 MB long
    for 14 chunks, 376 KB on disk)."""
    return path.lstat().st_blocks * 512
