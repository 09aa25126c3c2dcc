"""Feedback on answers: a thumbs up or down, with an optional comment, from the asker only.

Each piece of feedback is an audit record of its own (``answer.feedback``), chained like
every record and naming the answer's record by id, seq and hash, so an auditor sees what
was said about exactly which answer. ``answer_feedback`` keeps the latest rating of each
answer for the audit page's filter; the records stay the truth (each change is one more
record, the earlier ones remain).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import String, Text, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.audit import ANSWER, AuditLog, Event, Record
from core.db import Base, Database
from core.errors import InputError, NotFound
from core.names import clean_text
from core.types import Principal, is_uuid

FEEDBACK = "answer.feedback"
MAX_COMMENT_CHARS = 2000
Rating = Literal["up", "down"]
RATINGS: tuple[str, ...] = ("up", "down")
# One message for every answer the caller may not rate: someone else's answer, a record
# that is no answer, and an id that names nothing must be indistinguishable.
NO_SUCH_ANSWER = "no such answer"


class FeedbackRow(Base):
    __tablename__ = "answer_feedback"

    answer_record_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(200))
    rating: Mapped[str] = mapped_column(String(8), index=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    feedback_record_id: Mapped[str] = mapped_column(String(36))
    at: Mapped[str] = mapped_column(String(32))


@dataclass(frozen=True, slots=True)
class Feedback:
    answer_record_id: str
    user_id: str
    rating: str
    comment: str | None
    feedback_record_id: str
    at: str

    @classmethod
    def of(cls, row: FeedbackRow) -> Feedback:
        return cls(row.answer_record_id, row.user_id, row.rating, row.comment,
                   row.feedback_record_id, row.at)


def asker_of(record: Record) -> str | None:
    principal = record.body.get("principal") or {}
    return principal.get("user_id") if isinstance(principal, dict) else None


def clean_comment(comment: str | None) -> str | None:
    """The comment as stored: outer blanks removed, None when empty; InputError when it holds
    a control character or is over the limit."""
    if comment is None:
        return None
    comment = clean_text(comment, "the comment").strip() or None
    if comment is not None and len(comment) > MAX_COMMENT_CHARS:
        raise InputError(f"the comment is {len(comment)} characters long; the limit is "
                         f"{MAX_COMMENT_CHARS}")
    return comment


def own_answer(audit: AuditLog, principal: Principal, answer_record_id: str) -> Record:
    """The answer record ``answer_record_id`` if ``principal`` asked it; NotFound otherwise."""
    if not is_uuid(answer_record_id):  # no query for what cannot be a record id
        raise NotFound(NO_SUCH_ANSWER)
    try:
        answer = audit.get(answer_record_id)
    except NotFound:
        raise NotFound(NO_SUCH_ANSWER) from None
    if answer.kind != ANSWER or answer.actor != principal.user_id \
            or asker_of(answer) != principal.user_id:
        raise NotFound(NO_SUCH_ANSWER)
    return answer


def give_feedback(audit: AuditLog, principal: Principal, answer_record_id: str, rating: str,
                  comment: str | None, channel: str) -> Feedback:
    """Record ``principal``'s feedback on one of their own answers.

    NotFound unless the record is an answer ``principal`` asked: someone else's answer is
    indistinguishable from one that does not exist."""
    if rating not in RATINGS:
        raise InputError(f"rating must be one of {', '.join(RATINGS)}")
    comment = clean_comment(comment)
    answer = own_answer(audit, principal, answer_record_id)
    body = {"channel": channel, "answer_record_id": answer.record_id, "answer_seq": answer.seq,
            "answer_hash": answer.hash, "rating": rating, "comment": comment}
    record = audit.append(Event(FEEDBACK, principal.user_id, body))
    feedback = Feedback(answer.record_id, principal.user_id, rating, comment, record.record_id,
                        record.at)
    with audit.db.session() as s:
        _keep_latest(s, feedback)
    return feedback


def _keep_latest(s: Session, f: Feedback) -> None:
    """Insert or replace the answer's row, unless a later feedback is there already.

    Two feedbacks on one answer can race between their records (whose times are taken under
    the chain's lock, so they order them) and this write; the record written last must win,
    whichever write comes last. One statement: a read-then-write would race again."""
    values = {"answer_record_id": f.answer_record_id, "user_id": f.user_id, "rating": f.rating,
              "comment": f.comment, "feedback_record_id": f.feedback_record_id, "at": f.at}
    dialect = s.get_bind().dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(FeedbackRow).values(**values)
    s.execute(stmt.on_conflict_do_update(
        index_elements=[FeedbackRow.answer_record_id],
        set_={k: getattr(stmt.excluded, k) for k in values if k != "answer_record_id"},
        where=FeedbackRow.at <= stmt.excluded.at))


def feedback_on(audit: AuditLog, answer_record_id: str) -> Feedback | None:
    """The latest feedback on an answer (whoever asks: callers check who may see it)."""
    with audit.db.session() as s:
        row = s.get(FeedbackRow, answer_record_id)
        return Feedback.of(row) if row is not None else None


def latest_feedback(db: Database, answer_record_ids: Iterable[str]) -> dict[str, Feedback]:
    """The latest feedback on each of these answers that has any, in one query (a page of
    the audit list)."""
    ids = list(dict.fromkeys(answer_record_ids))
    if not ids:
        return {}
    with db.session() as s:
        rows = s.scalars(select(FeedbackRow).where(FeedbackRow.answer_record_id.in_(ids))).all()
        return {r.answer_record_id: Feedback.of(r) for r in rows}
