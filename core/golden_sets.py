"""Named golden sets kept in the database (``golden_questions``), and answers promoted into
them from the audit trail: each question keeps who added it and from which record.

Auditors and admins promote a recorded answer (``enclave golden add-from-audit``, the audit
page's button); ``enclave golden export`` writes a set as a golden file (``core.golden``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Integer, String, Text, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Database
from core.errors import InputError, NotFound, RegistryError
from core.golden import GoldenQuestion, check_set_name, question_of


def _taken(set_name: str, qid: str) -> InputError:
    return InputError(f"golden set {set_name!r} already holds a question {qid!r}")


class GoldenRow(Base):
    __tablename__ = "golden_questions"

    set_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    qid: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    body_json: Mapped[str] = mapped_column(Text)
    added_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    from_record: Mapped[str | None] = mapped_column(String(36), nullable=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True, slots=True)
class GoldenSet:
    name: str
    questions: int
    updated_at: datetime


class GoldenBook:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, set_name: str, question: GoldenQuestion) -> GoldenQuestion:
        """Add one question to a set (made when it is new). A question id already in the
        set is refused: a golden question is changed by removing and adding it again."""
        self.add_all(set_name, [question])
        return question

    def add_all(self, set_name: str, questions: Sequence[GoldenQuestion]) -> None:
        """Add questions in order, all or none."""
        check_set_name(set_name)
        try:
            with self.db.session() as s:
                last = s.scalar(select(func.max(GoldenRow.position))
                                .where(GoldenRow.set_name == set_name)) or 0
                for question in questions:
                    if s.get(GoldenRow, (set_name, question.qid)) is not None:
                        raise _taken(set_name, question.qid)
                    last += 1
                    s.add(GoldenRow(set_name=set_name, qid=question.qid, position=last,
                                    body_json=json.dumps(question.to_json(), ensure_ascii=False),
                                    added_by=question.added_by,
                                    from_record=question.from_record,
                                    added_at=datetime.now(UTC)))
                    s.flush()
        except RegistryError as exc:
            if isinstance(exc.__cause__, IntegrityError):  # the same id, at the same moment
                raise InputError(f"golden set {set_name!r}: a question was added with the same "
                                 "id at the same moment; nothing was added") from exc
            raise

    def questions(self, set_name: str) -> list[GoldenQuestion]:
        with self.db.session() as s:
            rows = s.scalars(select(GoldenRow).where(GoldenRow.set_name == set_name)
                             .order_by(GoldenRow.position)).all()
            bodies = [r.body_json for r in rows]
        if not bodies:
            raise NotFound(f"no golden set named {set_name!r}")
        return [question_of(json.loads(b), "") for b in bodies]

    def sets(self) -> list[GoldenSet]:
        with self.db.session() as s:
            rows = s.execute(select(GoldenRow.set_name, func.count(), func.max(GoldenRow.added_at))
                             .group_by(GoldenRow.set_name).order_by(GoldenRow.set_name)).all()
        return [GoldenSet(name, int(count), at) for name, count, at in rows]

    def remove(self, set_name: str, qid: str) -> None:
        with self.db.session() as s:
            result = s.execute(delete(GoldenRow).where(GoldenRow.set_name == set_name,
                                                       GoldenRow.qid == qid))
            gone = getattr(result, "rowcount", 0)
        if not gone:
            raise NotFound(f"golden set {set_name!r} holds no question {qid!r}")


def question_from_record(record: Any, *, qid: str | None = None, added_by: str,
                         documents: Sequence[str] | None = None,
                         answerable: bool | None = None, reference: str | None = None,
                         facts: Sequence[str] = ()) -> GoldenQuestion:
    """A golden question promoted from an answer's audit record (``core.audit.Record``).

    Asked as the record's asker was (their user id and the groups they had then). By
    default what the answer cited is what an answer should cite, and the question is
    answerable when it was answered; an auditor corrects either when the answer was wrong.
    """
    from core.audit import ANSWER

    if record.kind != ANSWER or not record.question:
        raise InputError(f"audit record {record.record_id} is not an answer (it is "
                         f"{record.kind!r}); only answers can become golden questions")
    body = record.body
    principal = body.get("principal") or {}
    cited = list(dict.fromkeys(str(c["doc_id"]) for c in body.get("citations", ())
                               if c.get("supported", True)))
    row: dict[str, Any] = {
        "id": qid or f"audit-{record.seq}",
        "question": record.question,
        "user": principal.get("user_id"),
        "groups": list(principal.get("groups", ())),
        "answerable": (body.get("outcome") == "answered") if answerable is None else answerable,
        "documents": list(documents) if documents is not None else cited,
        "facts": list(facts),
        "added_by": added_by,
        "from_record": record.record_id,
    }
    if reference is not None:
        row["reference"] = reference
    if not row["answerable"]:
        row["documents"] = list(documents or ())
    return question_of(row, row["id"])


def promote(book: GoldenBook, audit: Any, record_id: str, set_name: str, actor: str,
            channel: str, **corrections: Any) -> GoldenQuestion:
    """Add the answer of audit record ``record_id`` to golden set ``set_name`` (with an
    auditor's ``corrections``: qid, documents, answerable, reference, facts), and record
    that it was added, by whom and from which record."""
    from core.admin_records import record_admin

    check_set_name(set_name)
    question = question_from_record(audit.get(record_id), added_by=actor, **corrections)
    book.add(set_name, question)
    record_admin(audit, actor, "golden.added", channel, set=set_name, question_id=question.qid,
                 from_record=record_id, question=question.to_json())
    return question
