"""One chat exchange, shared by /v1/chat and the OpenAI-compatible route.

The question and the turns before it come from a stored conversation of the caller's or
from the messages of the request; the answer runs in a worker thread holding an answer
slot; streaming hands tokens over from that thread to the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.concurrency import run_in_threadpool

from core.container import Container
from core.errors import EnclaveError, InputError
from core.types import Answer, Principal
from serve import audit_trail
from serve.answer import Turn
from serve.http_errors import status_of
from serve.limits import AnswerGate
from serve.schemas import ChatMessage, ChatResponse

log = logging.getLogger(__name__)


class AccessCheckFailed(EnclaveError):
    """An answer about to leave cited a document its asker may not read (a bug upstream)."""


@dataclass(frozen=True, slots=True)
class Exchange:
    question: str
    history: tuple[Turn, ...]
    conversation_id: str | None  # stored turns go here (None: not stored)
    channel: str  # the route it came through, for the audit record


@dataclass(frozen=True, slots=True)
class Reply:
    answer: Answer
    audit_id: str  # the audit record written for it, before it was given


def from_messages(messages: Sequence[ChatMessage]) -> tuple[str, tuple[Turn, ...]]:
    """The last user message is the question; earlier user/assistant pairs are history."""
    question = messages[-1].text()
    history: list[Turn] = []
    pending: str | None = None
    for m in messages[:-1]:
        if m.role == "user":
            pending = m.text()
        elif m.role == "assistant" and pending is not None:
            history.append(Turn(pending, m.text()))
            pending = None
    return question, tuple(history)


def prepare(container: Container, principal: Principal, question: str | None,
            messages: Sequence[ChatMessage] | None, conversation_id: str | None,
            store: bool, channel: str) -> Exchange:
    book = container.conversations
    if messages is not None:
        question, history = from_messages(messages)
    else:
        assert question is not None
        history = ()
    if not question.strip():
        raise InputError("the question is empty")
    if conversation_id is not None:
        stored = book.turns(principal.user_id, conversation_id)  # NotFound unless theirs
        history = tuple(Turn(t.question, str(t.answer.get("answer", ""))) for t in stored) + history
    elif store:
        conversation_id = book.start(principal.user_id, question.strip())
    return Exchange(question, history, conversation_id, channel)


async def answer(container: Container, gate: AnswerGate, principal: Principal,
                 exchange: Exchange) -> Reply:
    with gate.slot():
        try:
            result = await run_in_threadpool(container.answerer.answer, exchange.question,
                                             principal, exchange.history)
        except Exception as exc:
            await run_in_threadpool(_record_failure, container, principal, exchange, exc)
            raise
    return await run_in_threadpool(finish, container, principal, exchange, result)


async def stream(container: Container, gate: AnswerGate, principal: Principal,
                 exchange: Exchange) -> AsyncIterator[tuple[str, Any]]:
    """("token", text) as the model writes, then ("answer", Reply) or ("error", exception).

    The caller must have taken a slot of ``gate``; it is given back here at the end.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def on_token(text: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("token", text))

    def work() -> None:
        try:
            try:
                result = container.answerer.answer(exchange.question, principal,
                                                   exchange.history, on_token=on_token)
            except Exception as exc:
                _record_failure(container, principal, exchange, exc)
                raise
            reply = finish(container, principal, exchange, result)
            loop.call_soon_threadsafe(queue.put_nowait, ("answer", reply))
        except Exception as exc:
            if not isinstance(exc, EnclaveError):
                log.exception("answering failed")
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

    # The request's context (its request id) goes along into the executor's thread.
    task = loop.run_in_executor(None, contextvars.copy_context().run, work)
    try:
        while True:
            kind, value = await queue.get()
            yield kind, value
            if kind != "token":
                break
    finally:
        await task
        gate.give_back()


def guard(container: Container, principal: Principal, result: Answer) -> None:
    """Check again, outside the search, that every cited document is one the asker may read.

    The search filters by the principal's groups inside the query; this second check makes
    a fault there an error instead of a leak.
    """
    infos = {c.doc_id: container.registry.get(c.doc_id) for c in result.citations}
    for doc_id, info in infos.items():
        if info is None or not principal.may_read(info.groups):
            log.error("an answer cited document %s that %s may not read; withheld",
                      doc_id, principal.user_id)
            raise AccessCheckFailed("the answer was withheld: it failed an access check")


def finish(container: Container, principal: Principal, exchange: Exchange,
           result: Answer) -> Reply:
    """Check access, write the audit record, store the turn: no answer leaves without these."""
    try:
        guard(container, principal, result)
    except AccessCheckFailed as exc:
        _record_failure(container, principal, exchange, exc, withheld=True)
        raise
    record = audit_trail.record_answer(container, principal, exchange.channel,
                                       exchange.question, exchange.history,
                                       exchange.conversation_id, result)
    if exchange.conversation_id is not None:
        body = ChatResponse.of(result, exchange.conversation_id, record.record_id)
        container.conversations.add_turn(principal.user_id, exchange.conversation_id,
                                         exchange.question, body.model_dump(mode="json"))
    return Reply(result, record.record_id)


def _record_failure(container: Container, principal: Principal, exchange: Exchange,
                    exc: BaseException, withheld: bool = False) -> None:
    """A question that got no answer is on the record too; a bad request is not a question."""
    if isinstance(exc, InputError):
        return
    try:
        container.audit.append(audit_trail.failure_event(
            container, principal, exchange.channel, exchange.question, exchange.history,
            exchange.conversation_id, exc, withheld))
    except Exception:
        # The original error is what the caller must see; this one goes to the log.
        log.exception("could not record a failed answer in the audit trail")


def error_body(exc: BaseException) -> dict[str, str]:
    """What a stream says when answering fails midway (the status line has gone already)."""
    if isinstance(exc, EnclaveError):
        return {"error": status_of(exc)[1], "detail": str(exc)}
    return {"error": "internal", "detail": "internal error; see the server log"}


def event(kind: str, data: Any) -> dict[str, str]:
    return {"event": kind, "data": json.dumps(data)}
