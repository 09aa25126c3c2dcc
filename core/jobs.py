"""Ingestion jobs and their items, in the same database as the registry.

A job is what an admin submitted: who, when, which folders or uploads, which groups,
whether it syncs. Its items are the files it found, one row each::

    pending --dispatch--> queued --claim--> running --> done | unchanged | failed
       \\                    \\                 \\--(worker lost: heartbeat silent)--> queued
        \\--------------------\\--cancel--> cancelled          failed --retry--> pending

``pending`` items wait in the database, not in the broker: a job keeps at most
``window`` items in the broker at a time (see :meth:`JobBook.take_pending`), so a
job of 100k files never builds one giant queue in front of a small job submitted later.
Sync deletions are recorded as items too (``deleted``), so the job shows what it removed.

Every state change is one conditional UPDATE, so two workers that receive the same
item (a redelivered message, a requeue after a lost heartbeat) cannot both run it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Database
from core.errors import NotFound
from core.types import archives_of

PLANNING, RUNNING, DONE, CANCELLED = "planning", "running", "done", "cancelled"
PENDING, QUEUED, ITEM_RUNNING = "pending", "queued", "running"
ITEM_DONE, UNCHANGED, FAILED, ITEM_CANCELLED, DELETED = (
    "done", "unchanged", "failed", "cancelled", "deleted"
)
OPEN = (PENDING, QUEUED, ITEM_RUNNING)
FINISHED = (ITEM_DONE, UNCHANGED, FAILED, ITEM_CANCELLED, DELETED)
ITEM_STATUSES = OPEN + FINISHED


def _now() -> datetime:
    return datetime.now(UTC)


class JobRow(Base):
    __tablename__ = "jobs"

    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(Text)
    sources_json: Mapped[str] = mapped_column(Text)
    groups_json: Mapped[str] = mapped_column(Text, default="[]")
    sync: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), index=True)
    # True once every file of the sources has an item: until then the job is not complete.
    planned: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Beats while the folders are walked; silent planning lost its worker.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ItemRow(Base):
    __tablename__ = "job_items"
    __table_args__ = (
        UniqueConstraint("job_id", "source"),
        Index("ix_job_items_job_status", "job_id", "status"),
    )

    item_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.job_id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(Text)
    doc_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(Text, nullable=True)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    pages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DeadLetterRow(Base):
    """A document that exhausted its retries: kept for an admin to look at."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("job_items.item_id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(String(36), index=True)
    source: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


@dataclass(frozen=True, slots=True)
class Item:
    item_id: int
    job_id: str
    source: str
    doc_id: str | None
    status: str
    reason: str | None
    attempts: int
    worker: str | None
    chunks: int
    pages: int | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    owner: str
    sources: tuple[str, ...]
    groups: tuple[str, ...]
    sync: bool
    status: str
    planned: bool
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def remaining(self) -> int:
        return sum(self.counts.get(s, 0) for s in OPEN)

    def eta_s(self, now: datetime | None = None) -> float | None:
        """Seconds left at the pace so far; None before the first file finishes."""
        finished = self.total - self.remaining
        if self.status != RUNNING or not finished or self.started_at is None:
            return None
        elapsed = ((now or _now()) - _aware(self.started_at)).total_seconds()
        return round(elapsed / finished * self.remaining, 1)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    item_id: int
    job_id: str
    source: str
    reason: str
    attempts: int
    created_at: datetime


class JobBook:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- jobs --------------------------------------------------------------------------------

    def create(
        self, owner: str, sources: Sequence[str], groups: Sequence[str], sync: bool
    ) -> str:
        job_id = str(uuid.uuid4())
        with self.db.session() as s:
            s.add(JobRow(job_id=job_id, owner=owner, sources_json=json.dumps(list(sources)),
                         groups_json=json.dumps(list(groups)), sync=sync, status=PLANNING,
                         heartbeat_at=_now()))
        return job_id

    def get(self, job_id: str) -> Job:
        with self.db.session() as s:
            row = _job_row(s, job_id)
            return _job(row, self._counts(s, [job_id]).get(job_id, {}))

    def jobs(self, limit: int = 50, offset: int = 0, status: str | None = None) -> list[Job]:
        query = select(JobRow).order_by(JobRow.created_at.desc()).limit(limit).offset(offset)
        if status:
            query = query.where(JobRow.status == status)
        with self.db.session() as s:
            rows = s.scalars(query).all()
            counts = self._counts(s, [r.job_id for r in rows])
            return [_job(r, counts.get(r.job_id, {})) for r in rows]

    def items(
        self, job_id: str, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Item]:
        query = select(ItemRow).where(ItemRow.job_id == job_id)
        if status:
            query = query.where(ItemRow.status == status)
        query = query.order_by(ItemRow.item_id).limit(limit).offset(offset)
        with self.db.session() as s:
            return [item_of(r) for r in s.scalars(query)]

    def item(self, item_id: int) -> Item | None:
        with self.db.session() as s:
            row = s.get(ItemRow, item_id)
            return item_of(row) if row else None

    def set_planned(self, job_id: str, error: str | None = None) -> None:
        with self.db.session() as s:
            s.execute(update(JobRow).where(JobRow.job_id == job_id)
                      .values(planned=True, error=error))

    def beat_planning(self, job_id: str) -> None:
        with self.db.session() as s:
            s.execute(update(JobRow).where(JobRow.job_id == job_id).values(heartbeat_at=_now()))

    def claim_planning(self, job_id: str, stale_after_s: float) -> bool:
        """True for the one caller that may walk this job's folders now."""
        cutoff = _now() - timedelta(seconds=stale_after_s)
        with self.db.session() as s:
            result = s.execute(
                update(JobRow)
                .where(JobRow.job_id == job_id, JobRow.status.in_((PLANNING, RUNNING)),
                       JobRow.planned.is_(False),
                       or_(JobRow.started_at.is_(None), JobRow.heartbeat_at.is_(None),
                           JobRow.heartbeat_at < cutoff))
                .values(started_at=func.coalesce(JobRow.started_at, _now()), heartbeat_at=_now())
            )
            return bool(_count(result))

    def abandon(self, job_id: str, reason: str) -> None:
        """A job whose work could not be queued at all: cancelled, with the reason."""
        with self.db.session() as s:
            s.execute(update(JobRow).where(JobRow.job_id == job_id)
                      .values(status=CANCELLED, error=reason, finished_at=_now()))

    def release_planning(self, job_id: str) -> None:
        """Planning stopped midway (an error): the next attempt may start at once."""
        with self.db.session() as s:
            s.execute(update(JobRow).where(JobRow.job_id == job_id).values(heartbeat_at=None))

    def finish_if_complete(self, job_id: str) -> bool:
        """Mark the job done when it is planned and no item is open; True when it did."""
        with self.db.session() as s:
            open_items = select(ItemRow.item_id).where(
                ItemRow.job_id == job_id, ItemRow.status.in_(OPEN)
            ).exists()
            result = s.execute(
                update(JobRow)
                .where(JobRow.job_id == job_id, JobRow.planned.is_(True),
                       JobRow.status.in_((PLANNING, RUNNING)), ~open_items)
                .values(status=DONE, finished_at=_now())
            )
            return bool(_count(result))

    def cancel(self, job_id: str) -> int:
        """Stop the job: its items not yet running are cancelled; returns how many."""
        with self.db.session() as s:
            row = _job_row(s, job_id)
            if row.status in (DONE, CANCELLED):
                return 0
            row.status, row.finished_at = CANCELLED, _now()
            result = s.execute(
                update(ItemRow)
                .where(ItemRow.job_id == job_id, ItemRow.status.in_((PENDING, QUEUED)))
                .values(status=ITEM_CANCELLED, reason="the job was cancelled", finished_at=_now())
            )
            return int(_count(result))

    def retry(self, job_id: str) -> int:
        """Put the job's failed items back to pending; returns how many."""
        with self.db.session() as s:
            row = _job_row(s, job_id)
            result = s.execute(
                update(ItemRow)
                .where(ItemRow.job_id == job_id, ItemRow.status == FAILED)
                .values(status=PENDING, reason=None, attempts=0, worker=None,
                        started_at=None, heartbeat_at=None, finished_at=None)
            )
            if _count(result):
                row.status, row.finished_at = RUNNING if row.planned else PLANNING, None
            return int(_count(result))

    def get_light(self, job_id: str) -> Job:
        """The job without its item counts (one row read, for each item a worker runs)."""
        with self.db.session() as s:
            row = _job_row(s, job_id)
            return _job(row, {})

    def others_running(self, item: Item, stale_after_s: float = 30.0) -> bool:
        """Whether another item of the same document runs now (in this or another job)."""
        if item.doc_id is None:
            return False
        cutoff = _now() - timedelta(seconds=stale_after_s)
        with self.db.session() as s:
            return bool(s.scalar(select(func.count()).select_from(ItemRow).where(
                ItemRow.doc_id == item.doc_id, ItemRow.item_id != item.item_id,
                ItemRow.status == ITEM_RUNNING, ItemRow.heartbeat_at >= cutoff)))

    def is_cancelled(self, job_id: str) -> bool:
        with self.db.session() as s:
            return s.scalar(select(JobRow.status).where(JobRow.job_id == job_id)) == CANCELLED

    def is_finished(self, job_id: str) -> bool:
        """Done or cancelled; a job that no longer exists counts as finished."""
        with self.db.session() as s:
            status = s.scalar(select(JobRow.status).where(JobRow.job_id == job_id))
            return status is None or status in (DONE, CANCELLED)

    # -- items -------------------------------------------------------------------------------

    def add_items(self, job_id: str, rows: Iterable[tuple[str, str | None, str, str | None]]) -> int:
        """Add (source, doc_id, status, reason) rows, skipping sources the job already has.

        Idempotent, so planning that was interrupted and runs again adds only what it missed.
        """
        rows = list(rows)
        if not rows:
            return 0
        with self.db.session() as s:
            known = set(s.scalars(select(ItemRow.source).where(
                ItemRow.job_id == job_id, ItemRow.source.in_([r[0] for r in rows]))))
            now = _now()
            added = 0
            for source, doc_id, status, reason in rows:
                if source in known:
                    continue
                known.add(source)
                s.add(ItemRow(job_id=job_id, source=source, doc_id=doc_id, status=status,
                              reason=reason, finished_at=now if status in FINISHED else None))
                added += 1
            s.execute(update(JobRow).where(JobRow.job_id == job_id, JobRow.status == PLANNING)
                      .values(status=RUNNING))
            return added

    def take_pending(self, job_id: str, window: int) -> list[int]:
        """Move pending items to queued until ``window`` are in the broker; returns their ids."""
        with self.db.session() as s:
            if s.scalar(select(JobRow.status).where(JobRow.job_id == job_id)) == CANCELLED:
                return []
            in_flight = s.scalar(select(func.count()).select_from(ItemRow).where(
                ItemRow.job_id == job_id, ItemRow.status.in_((QUEUED, ITEM_RUNNING)))) or 0
            room = window - int(in_flight)
            if room <= 0:
                return []
            candidates = s.scalars(
                select(ItemRow.item_id).where(ItemRow.job_id == job_id, ItemRow.status == PENDING)
                .order_by(ItemRow.item_id).limit(room)
            ).all()
            taken = []
            for item_id in candidates:
                # Conditional: a concurrent dispatcher that took it first wins.
                result = s.execute(
                    update(ItemRow).where(ItemRow.item_id == item_id, ItemRow.status == PENDING)
                    .values(status=QUEUED, queued_at=_now())
                )
                if _count(result):
                    taken.append(item_id)
            return taken

    def claim(self, item_id: int, worker: str, stale_after_s: float) -> Item | None:
        """Start running an item; None when it is not this caller's to run.

        Claimable: queued, or running with a silent heartbeat (its worker was lost).
        """
        cutoff = _now() - timedelta(seconds=stale_after_s)
        now = _now()
        with self.db.session() as s:
            result = s.execute(
                update(ItemRow)
                .where(ItemRow.item_id == item_id, or_(
                    ItemRow.status == QUEUED,
                    and_(ItemRow.status == ITEM_RUNNING, ItemRow.heartbeat_at < cutoff)))
                .values(status=ITEM_RUNNING, attempts=ItemRow.attempts + 1, worker=worker,
                        started_at=now, heartbeat_at=now, reason=None)
            )
            if not _count(result):
                return None
            row = s.get(ItemRow, item_id)
            return item_of(row) if row else None

    def beat(self, item_id: int) -> None:
        with self.db.session() as s:
            s.execute(update(ItemRow).where(ItemRow.item_id == item_id,
                                            ItemRow.status == ITEM_RUNNING)
                      .values(heartbeat_at=_now()))

    def finish(
        self,
        item_id: int,
        status: str,
        reason: str | None = None,
        *,
        doc_id: str | None = None,
        chunks: int = 0,
        pages: int | None = None,
    ) -> None:
        values: dict[str, object] = {"status": status, "reason": reason, "finished_at": _now(),
                                     "chunks": chunks, "pages": pages}
        if doc_id:
            values["doc_id"] = doc_id
        with self.db.session() as s:
            s.execute(update(ItemRow).where(ItemRow.item_id == item_id).values(**values))

    def requeue(self, item_id: int, reason: str) -> None:
        """Back to queued for a retry the broker will deliver (a transient error)."""
        with self.db.session() as s:
            s.execute(update(ItemRow).where(ItemRow.item_id == item_id,
                                            ItemRow.status == ITEM_RUNNING)
                      .values(status=QUEUED, reason=reason, queued_at=_now()))

    def dead_letter(self, item_id: int, reason: str) -> None:
        with self.db.session() as s:
            row = s.get(ItemRow, item_id)
            if row is None:
                return
            row.status, row.reason, row.finished_at = FAILED, reason, _now()
            s.add(DeadLetterRow(item_id=item_id, job_id=row.job_id, source=row.source,
                                reason=reason, attempts=row.attempts))

    def dead_letters(self, job_id: str | None = None) -> list[DeadLetter]:
        query = select(DeadLetterRow).order_by(DeadLetterRow.id)
        if job_id:
            query = query.where(DeadLetterRow.job_id == job_id)
        with self.db.session() as s:
            return [DeadLetter(r.item_id, r.job_id, r.source, r.reason, r.attempts, r.created_at)
                    for r in s.scalars(query)]

    def lost_items(self, stale_after_s: float) -> list[int]:
        """Running items whose heartbeat went silent: their worker is gone."""
        cutoff = _now() - timedelta(seconds=stale_after_s)
        with self.db.session() as s:
            return list(s.scalars(select(ItemRow.item_id).where(
                ItemRow.status == ITEM_RUNNING, ItemRow.heartbeat_at < cutoff)))

    def unsent(self, item_ids: Sequence[int]) -> None:
        """Back to pending: items taken for the broker whose message could not be sent."""
        with self.db.session() as s:
            s.execute(update(ItemRow).where(ItemRow.item_id.in_(list(item_ids)),
                                            ItemRow.status == QUEUED)
                      .values(status=PENDING, queued_at=None))

    def long_queued(self, older_than_s: float) -> list[int]:
        """Items queued for longer than any message should wait (a broker that lost them);
        their clock restarts, so each is sent again once per period, not on every pass."""
        cutoff = _now() - timedelta(seconds=older_than_s)
        with self.db.session() as s:
            ids = list(s.scalars(select(ItemRow.item_id).where(
                ItemRow.status == QUEUED, ItemRow.queued_at < cutoff)))
            if ids:
                s.execute(update(ItemRow).where(ItemRow.item_id.in_(ids), ItemRow.status == QUEUED)
                          .values(queued_at=_now()))
            return ids

    def lost_plans(self, stale_after_s: float) -> list[str]:
        cutoff = _now() - timedelta(seconds=stale_after_s)
        with self.db.session() as s:
            return list(s.scalars(select(JobRow.job_id).where(
                JobRow.status.in_((PLANNING, RUNNING)), JobRow.planned.is_(False),
                or_(JobRow.heartbeat_at.is_(None), JobRow.heartbeat_at < cutoff))))

    def missing_sources(self, job_id: str, folder: str) -> list[tuple[str, str]]:
        """(doc_id, source) of registered documents under ``folder`` this job did not find.

        An archive's members are found with it: the archive is the item, and its run
        removes the members it no longer holds.
        """
        from core.registry import DocumentRow

        prefix = folder.rstrip("/") + "/"
        with self.db.session() as s:
            found = select(ItemRow.item_id).where(
                ItemRow.job_id == job_id, ItemRow.source == DocumentRow.source).exists()
            rows = s.execute(
                select(DocumentRow.doc_id, DocumentRow.source).where(
                    func.substr(DocumentRow.source, 1, len(prefix)) == prefix, ~found)
                .order_by(DocumentRow.source)
            ).all()
            archives = {a for _, src in rows for a in archives_of(src)}
            listed = set(s.scalars(select(ItemRow.source).where(
                ItemRow.job_id == job_id, ItemRow.source.in_(archives)))) if archives else set()
            return [(d, src) for d, src in rows if not listed.intersection(archives_of(src))]

    def active_jobs(self) -> list[str]:
        with self.db.session() as s:
            return list(s.scalars(select(JobRow.job_id).where(
                JobRow.status.in_((PLANNING, RUNNING)))))

    def item_totals(self) -> dict[str, int]:
        """Items of every job by status (for metrics: open work and finished outcomes)."""
        with self.db.session() as s:
            rows = s.execute(select(ItemRow.status, func.count()).group_by(ItemRow.status)).all()
        totals = dict.fromkeys(ITEM_STATUSES, 0)
        totals.update({status: int(n) for status, n in rows})
        return totals

    @staticmethod
    def _counts(s, job_ids: Sequence[str]) -> dict[str, dict[str, int]]:  # type: ignore[no-untyped-def]
        out: dict[str, dict[str, int]] = {j: {} for j in job_ids}
        if not job_ids:
            return out
        rows = s.execute(
            select(ItemRow.job_id, ItemRow.status, func.count())
            .where(ItemRow.job_id.in_(job_ids)).group_by(ItemRow.job_id, ItemRow.status)
        ).all()
        for job_id, status, count in rows:
            out[job_id][status] = int(count)
        return out


def _job_row(s: Any, job_id: str) -> JobRow:
    row = s.get(JobRow, job_id)
    if row is None:
        raise NotFound(f"no job {job_id!r}")
    return row  # type: ignore[no-any-return]


def _count(result: Any) -> int:
    """Rows an UPDATE changed (a CursorResult's rowcount)."""
    return int(result.rowcount)


def _aware(at: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns.
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _job(row: JobRow, counts: dict[str, int]) -> Job:
    return Job(
        job_id=row.job_id, owner=row.owner, sources=tuple(json.loads(row.sources_json)),
        groups=tuple(json.loads(row.groups_json)), sync=row.sync, status=row.status,
        planned=row.planned, error=row.error, created_at=_aware(row.created_at),
        started_at=_aware(row.started_at) if row.started_at else None,
        finished_at=_aware(row.finished_at) if row.finished_at else None,
        counts={s: counts.get(s, 0) for s in ITEM_STATUSES},
    )


def item_of(row: ItemRow) -> Item:
    return Item(
        item_id=row.item_id, job_id=row.job_id, source=row.source, doc_id=row.doc_id,
        status=row.status, reason=row.reason, attempts=row.attempts, worker=row.worker,
        chunks=row.chunks, pages=row.pages,
        started_at=_aware(row.started_at) if row.started_at else None,
        finished_at=_aware(row.finished_at) if row.finished_at else None,
    )
