"""One chat exchange, shared by /v1/chat and the OpenAI-compatible route.

The question and the turns before it come from a stored conversation of the caller's or
from the messages of the request; the answer runs in a thread of its own holding an answer
slot (:class:`AnswerRun`), which it gives back whatever the client does; streaming hands
tokens over from that thread to the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fastapi import Request
from sse_starlette.sse import EventSourceResponse
from starlette.types import Receive, Scope, Send

from core.container import Container
from core.conversations import StoredTurn
from core.errors import Abandoned, EnclaveError, InputError
from core.names import clean_text
from core.registry import Registry
from core.types import Answer, Principal
from serve import audit_trail
from serve.answer import Turn, check_question
from serve.http_errors import status_of
from serve.limits import AnswerGate, Lease
from serve.schemas import ChatMessage, ChatResponse

log = logging.getLogger(__name__)
# How often a plain answer's request is checked for a client that went away.
_DISCONNECT_POLL_S = 0.5


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
    """The exchange a chat request asks for; a refused one is recorded, then raised."""
    if messages is not None:
        question, history = from_messages(messages)
    else:
        assert question is not None
        history = ()
    try:
        return _prepare(container, principal, question, history, conversation_id, store,
                        channel)
    except InputError as exc:
        _record_rejection(container, principal, channel, question, exc)
        raise


def _prepare(container: Container, principal: Principal, question: str,
             history: tuple[Turn, ...], conversation_id: str | None, store: bool,
             channel: str) -> Exchange:
    book = container.conversations
    question = check_question(question, container.settings.answer.max_question_chars)
    limit = container.settings.answer.max_question_chars
    for turn in history:
        # Earlier questions are read again (rewriting a follow-up): the same limits apply.
        clean_text(turn.question, "an earlier question")
        if len(turn.question) > limit:
            raise InputError(f"an earlier question is {len(turn.question)} characters long; "
                             f"the limit is {limit}")
        clean_text(turn.answer, "an earlier answer")
    if conversation_id is not None:
        stored = book.turns(principal.user_id, conversation_id)  # NotFound unless theirs
        # A withheld answer is not read back to the model either: its text came from a
        # document the asker may no longer read.
        history = tuple(Turn(t.question, str(t.answer.get("answer", "")))
                        for t in readable_turns(container.registry, principal, stored)) + history
    elif store:
        conversation_id = book.start(principal.user_id, question)
    return Exchange(question, history, conversation_id, channel)


GONE = "the client went away before the answer was complete"


WITHHELD = ("This answer is withheld: it cites a document you can no longer read, or one "
            "that no longer exists.")


def readable_turns(registry: Registry, principal: Principal,
                   turns: Sequence[StoredTurn]) -> list[StoredTurn]:
    """Stored turns as the caller may see them now, checked on read as cited text is.

    A turn citing a document the caller can no longer read (their groups changed, or the
    document's), or one that no longer exists, keeps its question but not its answer or
    citations, and says so.
    """
    verdicts: dict[str, bool] = {}

    def may_read(doc_id: str) -> bool:
        if doc_id not in verdicts:
            info = registry.get(doc_id)
            verdicts[doc_id] = (info is not None and info.active_version is not None
                                and principal.may_read(info.groups))
        return verdicts[doc_id]

    out = []
    for turn in turns:
        if all(may_read(d) for d in turn.cited_documents()):
            out.append(turn)
            continue
        answer = {**turn.answer, "answer": WITHHELD, "citations": [], "withheld": True}
        out.append(replace(turn, answer=answer))
    return out


class AnswerRun:
    """One answer, worked out in a thread of its own while its request waits or streams.

    The run owns its answer slot (a :class:`Lease`) and gives it back when its work ends,
    whatever the client did. :meth:`close`, called when the response is over or could not
    begin, stops the work at the model's next token and gives the slot back at once if the
    work never started. A run stopped that way is recorded as a failed answer.
    """

    def __init__(self, container: Container, lease: Lease, principal: Principal,
                 exchange: Exchange, *, tokens: bool) -> None:
        self.container = container
        self.lease = lease
        self.principal = principal
        self.exchange = exchange
        self.tokens = tokens  # hand the model's tokens to the reader as they come
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._started = False
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._stop.is_set():
                return  # closed before it began: close() gave the slot back
            self._started = True
        # The request's context (its request id) goes along into the thread.
        context = contextvars.copy_context()
        worker = threading.Thread(target=context.run, args=(self._work, loop), name="answer",
                                  daemon=True)
        self.lease.worker = worker
        worker.start()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            started = self._started
        if not started:
            self.lease.release()

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        """("token", text) as the model writes, then ("answer", Reply) or ("error", exc)."""
        while True:
            kind, value = await self._queue.get()
            yield kind, value
            if kind != "token":
                return

    async def reply(self, request: Request | None = None) -> Reply:
        """The finished reply; the work stops if ``request``'s client goes away meanwhile."""
        waiting = asyncio.ensure_future(self._final())
        try:
            while True:
                done, _ = await asyncio.wait({waiting}, timeout=_DISCONNECT_POLL_S)
                if done:
                    kind, value = waiting.result()
                    if kind == "error":
                        raise value
                    return value  # type: ignore[no-any-return]
                if request is not None and await request.is_disconnected():
                    self.close()
                    raise Abandoned(GONE)
        finally:
            waiting.cancel()

    async def _final(self) -> tuple[str, Any]:
        async for kind, value in self.events():
            if kind != "token":
                return kind, value
        raise AssertionError("a run always ends with an answer or an error")

    def _work(self, loop: asyncio.AbstractEventLoop) -> None:
        def put(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
            except RuntimeError:
                pass  # the event loop has closed (the server stopped): nobody left to tell

        def on_token(text: str) -> None:
            if self._stop.is_set():
                raise Abandoned(GONE)
            if self.tokens:
                put("token", text)

        c, principal, exchange = self.container, self.principal, self.exchange
        try:
            try:
                result = c.answerer.answer(exchange.question, principal, exchange.history,
                                           on_token=on_token)
                if self._stop.is_set():
                    raise Abandoned(GONE)
            except Exception as exc:
                if self._stop.is_set() and not isinstance(exc, Abandoned):
                    exc = Abandoned(GONE)
                if not isinstance(exc, EnclaveError):
                    log.exception("answering failed")
                _record_failure(c, principal, exchange, exc)
                put("error", exc)
                return
            try:
                reply = finish(c, principal, exchange, result)
            except Exception as exc:
                if not isinstance(exc, EnclaveError):
                    log.exception("recording the answer failed")
                put("error", exc)
                return
            put("answer", reply)
        finally:
            self.lease.release()


class AnswerStream(EventSourceResponse):
    """Server-Sent Events of one :class:`AnswerRun`: the run starts with the response and
    is closed when the response ends, however it ends (finished, client gone, error)."""

    def __init__(self, content: AsyncIterator[dict[str, str]], run: AnswerRun) -> None:
        super().__init__(content)
        self.run = run

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self.run.start()
            await super().__call__(scope, receive, send)
        finally:
            self.run.close()


async def answer(container: Container, gate: AnswerGate, principal: Principal,
                 exchange: Exchange, request: Request | None = None) -> Reply:
    """A plain (not streamed) answer, under an answer slot."""
    run = AnswerRun(container, gate.take(exchange.channel), principal, exchange, tokens=False)
    try:
        run.start()
        return await run.reply(request)
    finally:
        run.close()


def stream(container: Container, gate: AnswerGate, principal: Principal,
           exchange: Exchange) -> AnswerRun:
    """A streamed answer's run. The slot is taken here, before the response starts, so a
    full server answers 503 rather than a broken stream; wrap the events in AnswerStream."""
    return AnswerRun(container, gate.take(exchange.channel), principal, exchange, tokens=True)


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
        body = ChatResponse.of(result, exchange.conversation_id, record.record_id,
                               principal.sees_paths)
        container.conversations.add_turn(principal.user_id, exchange.conversation_id,
                                         exchange.question, body.model_dump(mode="json"))
    return Reply(result, record.record_id)


def _record_failure(container: Container, principal: Principal, exchange: Exchange,
                    exc: BaseException, withheld: bool = False) -> None:
    """A question that got no answer is on the record too."""
    if isinstance(exc, InputError):
        _record_rejection(container, principal, exchange.channel, exchange.question, exc)
        return
    try:
        container.audit.append(audit_trail.failure_event(
            container, principal, exchange.channel, exchange.question, exchange.history,
            exchange.conversation_id, exc, withheld))
    except Exception:
        # The original error is what the caller must see; this one goes to the log.
        log.exception("could not record a failed answer in the audit trail")


def _record_rejection(container: Container, principal: Principal, channel: str,
                      question: str, exc: InputError) -> None:
    """A chat request refused on its way to an answer (4xx) is on the record as such."""
    try:
        container.audit.append(audit_trail.rejection_event(principal, channel, question, exc))
    except Exception:
        log.exception("could not record a refused question in the audit trail")


def error_body(exc: BaseException) -> dict[str, str]:
    """What a stream says when answering fails midway (the status line has gone already)."""
    if isinstance(exc, EnclaveError):
        return {"error": status_of(exc)[1], "detail": str(exc)}
    return {"error": "internal", "detail": "internal error; see the server log"}


def event(kind: str, data: Any) -> dict[str, str]:
    return {"event": kind, "data": json.dumps(data)}
