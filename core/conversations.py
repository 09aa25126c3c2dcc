"""Conversations: each user's questions and the answers enclave gave, visible to them only."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Database
from core.errors import NotFound


def _now() -> datetime:
    return datetime.now(UTC)


class ConversationRow(Base):
    __tablename__ = "conversations"

    conversation_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(200), index=True)
    title: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class TurnRow(Base):
    __tablename__ = "conversation_turns"

    turn_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.conversation_id", ondelete="CASCADE"), index=True)
    question: Mapped[str] = mapped_column(Text)
    answer_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


@dataclass(frozen=True, slots=True)
class StoredTurn:
    question: str
    answer: dict[str, Any]  # the reply as it was given (serve.http.schemas.ChatResponse)
    created_at: datetime

    def cited_documents(self) -> set[str]:
        return {str(c.get("doc_id")) for c in self.answer.get("citations", ())}


@dataclass(frozen=True, slots=True)
class Conversation:
    conversation_id: str
    title: str
    created_at: datetime
    updated_at: datetime
    turns: int


class ConversationBook:
    def __init__(self, db: Database) -> None:
        self.db = db

    def start(self, user_id: str, title: str) -> str:
        conversation_id = str(uuid.uuid4())
        with self.db.session() as s:
            s.add(ConversationRow(conversation_id=conversation_id, user_id=user_id,
                                  title=title[:200]))
        return conversation_id

    def owned(self, user_id: str, conversation_id: str) -> Conversation:
        """The conversation if this user owns it; NotFound otherwise (never 'not yours')."""
        for c in self._list(user_id, conversation_id):
            return c
        raise NotFound("no such conversation")

    def conversations(self, user_id: str, limit: int = 50, offset: int = 0) -> list[Conversation]:
        return self._list(user_id, None, limit, offset)

    def turns(self, user_id: str, conversation_id: str) -> list[StoredTurn]:
        self.owned(user_id, conversation_id)
        with self.db.session() as s:
            rows = s.scalars(select(TurnRow).where(TurnRow.conversation_id == conversation_id)
                             .order_by(TurnRow.turn_id))
            return [StoredTurn(r.question, json.loads(r.answer_json), r.created_at) for r in rows]

    def add_turn(self, user_id: str, conversation_id: str, question: str,
                 answer: dict[str, Any]) -> None:
        self.owned(user_id, conversation_id)
        with self.db.session() as s:
            s.add(TurnRow(conversation_id=conversation_id, question=question,
                          answer_json=json.dumps(answer)))
            s.execute(update(ConversationRow)
                      .where(ConversationRow.conversation_id == conversation_id)
                      .values(updated_at=_now()))

    def redact_citing(self, doc_id: str, note: str) -> int:
        """Redact every stored answer that cites ``doc_id`` (a deletion for legal reasons):
        its text becomes ``note`` and the quotes of that document go. Returns how many."""
        redacted = 0
        needle = f"%{doc_id}%"  # document ids are UUIDs: no LIKE wildcards inside
        with self.db.session() as s:
            rows = s.scalars(select(TurnRow).where(TurnRow.answer_json.like(needle))).all()
            for row in rows:
                answer = json.loads(row.answer_json)
                citations = answer.get("citations", [])
                if not any(c.get("doc_id") == doc_id for c in citations):
                    continue
                answer["answer"] = note
                answer["redacted"] = True
                for c in citations:
                    if c.get("doc_id") == doc_id:
                        c["quote"] = ""
                        c["redacted"] = True
                row.answer_json = json.dumps(answer)
                redacted += 1
        return redacted

    def _list(self, user_id: str, conversation_id: str | None, limit: int = 50,
              offset: int = 0) -> list[Conversation]:
        turns = (select(TurnRow.conversation_id, func.count().label("n"))
                 .group_by(TurnRow.conversation_id).subquery())
        query = (select(ConversationRow, func.coalesce(turns.c.n, 0))
                 .outerjoin(turns, turns.c.conversation_id == ConversationRow.conversation_id)
                 .where(ConversationRow.user_id == user_id)
                 .order_by(ConversationRow.updated_at.desc()).limit(limit).offset(offset))
        if conversation_id is not None:
            query = query.where(ConversationRow.conversation_id == conversation_id)
        with self.db.session() as s:
            return [Conversation(r.conversation_id, r.title, r.created_at, r.updated_at, int(n))
                    for r, n in s.execute(query)]
