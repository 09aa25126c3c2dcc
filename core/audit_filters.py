"""Which audit records to read: by asker, time, kind, text, refusal, unsupported sentences
and the feedback their askers gave (``core.feedback``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import column, func, or_, select, table

from core.errors import InputError

# The feedback filter's values: a latest rating, or whether an answer has any feedback.
FEEDBACK_FILTERS = ("up", "down", "any", "none")
# The latest feedback on each answer (core.feedback, which builds on core.audit, owns it).
_FEEDBACK = table("answer_feedback", column("answer_record_id"), column("rating"))


@dataclass(frozen=True, slots=True)
class Filters:
    user: str | None = None
    since: str | None = None  # ISO time, inclusive
    until: str | None = None  # ISO time, exclusive
    text: str | None = None
    kind: str | None = None
    refused: bool | None = None
    unsupported: bool | None = None
    feedback: str | None = None  # one of FEEDBACK_FILTERS

    def active(self) -> dict[str, Any]:
        """The filters that are set, for the record of an export."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def conditions(f: Filters) -> list[Any]:
    """The SQL conditions of ``f`` on audit records."""
    from core.audit import AuditRow  # the records' table; that module builds on this one

    out: list[Any] = []
    if f.user:
        out.append(AuditRow.actor == f.user)
    if f.since:
        out.append(AuditRow.at >= _iso(f.since, "since"))
    if f.until:
        out.append(AuditRow.at < _iso(f.until, "until"))
    if f.kind:
        out.append(AuditRow.kind == f.kind)
    if f.refused is not None:
        out.append(AuditRow.refused == f.refused)  # never matches admin events (NULL)
    if f.unsupported is not None:
        out.append(AuditRow.unsupported > 0 if f.unsupported else AuditRow.unsupported == 0)
    if f.feedback:
        out.extend(_feedback_conditions(f.feedback))
    if f.text:
        needle = "%" + f.text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        out.append(or_(func.lower(AuditRow.question).like(needle, escape="\\"),
                       func.lower(AuditRow.answer).like(needle, escape="\\")))
    return out


def _feedback_conditions(value: str) -> list[Any]:
    """Answers whose latest rating is ``value`` (up, down), or that have any or no feedback."""
    from core.audit import ANSWER, AuditRow

    if value not in FEEDBACK_FILTERS:
        raise InputError(f"feedback: one of {', '.join(FEEDBACK_FILTERS)}")
    rated = select(_FEEDBACK.c.answer_record_id)
    if value in ("up", "down"):
        rated = rated.where(_FEEDBACK.c.rating == value)
    found = AuditRow.record_id.not_in(rated) if value == "none" else AuditRow.record_id.in_(rated)
    return [AuditRow.kind == ANSWER, found]


def _iso(value: str, name: str) -> str:
    """A time filter as the records write times (UTC, microseconds)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"{name}: an ISO 8601 time, e.g. 2026-11-29T08:00:00Z") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
