"""Evaluation runs: one configuration asked one golden set, with its figures and the
outcome of every question, kept so a later run can be compared with it (``--baseline``).

A run is ``running`` while it asks, then ``done``, or ``failed`` with its reason (an
endpoint that cannot be reached, settings that cannot be used). Runs started together
by one ``enclave eval golden`` share a ``batch_id``: the configurations side by side.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Database
from core.errors import NotFound

RUNNING, DONE, FAILED = "running", "done", "failed"


class EvalRunRow(Base):
    __tablename__ = "eval_runs"

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(36), index=True)
    golden: Mapped[str] = mapped_column(Text)
    golden_sha256: Mapped[str] = mapped_column(String(64))
    config: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    settings_json: Mapped[str] = mapped_column(Text)
    figures_json: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class EvalResultRow(Base):
    __tablename__ = "eval_results"

    run_id: Mapped[str] = mapped_column(ForeignKey("eval_runs.run_id", ondelete="CASCADE"),
                                        primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    qid: Mapped[str] = mapped_column(String(128))
    body_json: Mapped[str] = mapped_column(Text)


@dataclass(frozen=True, slots=True)
class EvalRun:
    run_id: str
    batch_id: str
    golden: str  # the file or set asked
    golden_sha256: str
    config: str  # the configuration's name
    status: str
    reason: str | None
    settings: dict[str, Any]  # what it ran with (no secrets)
    figures: dict[str, Any]
    created_by: str
    started_at: datetime
    finished_at: datetime | None
    results: tuple[dict[str, Any], ...] = field(default=())  # per question, in order

    @classmethod
    def of(cls, row: EvalRunRow, results: Sequence[dict[str, Any]] = ()) -> EvalRun:
        return cls(row.run_id, row.batch_id, row.golden, row.golden_sha256, row.config,
                   row.status, row.reason, json.loads(row.settings_json),
                   json.loads(row.figures_json), row.created_by, row.started_at,
                   row.finished_at, tuple(results))

    def summary(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "batch_id": self.batch_id, "golden": self.golden,
                "golden_sha256": self.golden_sha256, "config": self.config,
                "status": self.status, "reason": self.reason, "settings": self.settings,
                "figures": self.figures, "created_by": self.created_by,
                "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None}


class RunBook:
    def __init__(self, db: Database) -> None:
        self.db = db

    def start(self, batch_id: str, golden: str, golden_sha256: str, config: str,
              settings: Mapping[str, Any], created_by: str) -> str:
        run_id = str(uuid.uuid4())
        with self.db.session() as s:
            s.add(EvalRunRow(run_id=run_id, batch_id=batch_id, golden=golden,
                             golden_sha256=golden_sha256, config=config, status=RUNNING,
                             settings_json=json.dumps(settings, default=str),
                             figures_json="{}", created_by=created_by,
                             started_at=datetime.now(UTC)))
        return run_id

    def finish(self, run_id: str, figures: Mapping[str, Any],
               results: Sequence[Mapping[str, Any]]) -> None:
        with self.db.session() as s:
            for position, result in enumerate(results, 1):
                s.add(EvalResultRow(run_id=run_id, position=position, qid=str(result["id"]),
                                    body_json=json.dumps(result, ensure_ascii=False)))
            s.execute(update(EvalRunRow).where(EvalRunRow.run_id == run_id).values(
                status=DONE, figures_json=json.dumps(figures), finished_at=datetime.now(UTC)))

    def fail(self, run_id: str, reason: str) -> None:
        with self.db.session() as s:
            s.execute(update(EvalRunRow).where(EvalRunRow.run_id == run_id).values(
                status=FAILED, reason=reason[:2000], finished_at=datetime.now(UTC)))

    def get(self, run_id: str) -> EvalRun:
        """A run with its per-question results; a unique prefix of its id is enough."""
        with self.db.session() as s:
            rows = s.scalars(select(EvalRunRow).where(EvalRunRow.run_id.startswith(run_id))
                             .limit(2)).all() if len(run_id) >= 6 else []
            if len(rows) != 1:
                raise NotFound(f"no evaluation run {run_id!r}" if not rows else
                               f"{run_id!r} names more than one evaluation run")
            results = s.scalars(select(EvalResultRow.body_json)
                                .where(EvalResultRow.run_id == rows[0].run_id)
                                .order_by(EvalResultRow.position)).all()
            return EvalRun.of(rows[0], [json.loads(b) for b in results])

    def runs(self, limit: int = 50, before: datetime | None = None) -> list[EvalRun]:
        """Newest first, without their per-question results."""
        with self.db.session() as s:
            query = select(EvalRunRow)
            if before is not None:
                query = query.where(EvalRunRow.started_at < before)
            rows = s.scalars(query.order_by(EvalRunRow.started_at.desc()).limit(limit)).all()
            return [EvalRun.of(r) for r in rows]
