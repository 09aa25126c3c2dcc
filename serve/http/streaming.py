"""One chat exchange over HTTP, shared by /v1/chat and the OpenAI-compatible route.

The answer itself comes from the one :class:`AnswerService`. Here it runs in a thread of
its own holding an answer slot (:class:`AnswerRun`), which it gives back whatever the
client does; a stream hands each verified sentence over from that thread to the event
loop as soon as the service has checked it (and, under a debugging setting only, the
model's raw tokens).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import Request
from sse_starlette.sse import EventSourceResponse
from starlette.types import Receive, Scope, Send

from core.errors import Abandoned, EnclaveError
from core.types import Principal
from serve.answering.compose import Shown
from serve.answering.exchange import Exchange, Turn
from serve.answering.service import GONE, AnswerService, Reply
from serve.http.errors import status_of
from serve.http.limits import AnswerGate, Lease
from serve.http.schemas import ChatMessage

log = logging.getLogger(__name__)
# How often a plain answer's request is checked for a client that went away.
_DISCONNECT_POLL_S = 0.5


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


class AnswerRun:
    """One answer, worked out in a thread of its own while its request waits or streams.

    The run owns its answer slot (a :class:`Lease`) and gives it back when its work ends,
    whatever the client did. :meth:`close`, called when the response is over or could not
    begin, stops the work at the model's next token, and gives the slot back at once if
    the work never started. The service records a run stopped that way as abandoned.
    """

    def __init__(self, service: AnswerService, lease: Lease, principal: Principal,
                 exchange: Exchange, *, tokens: bool = False) -> None:
        self.service = service
        self.lease = lease
        self.principal = principal
        self.exchange = exchange
        self.tokens = tokens  # the model's raw tokens too (a debugging setting)
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
            self._started = True  # a start after this does nothing
        if not started:
            self.lease.release()
            self.service.abandoned(self.principal, self.exchange)

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        """("sentence", Shown) as each is verified (and ("token", text) when debugging),
        then ("answer", Reply) or ("error", exception)."""
        while True:
            kind, value = await self._queue.get()
            yield kind, value
            if kind in ("answer", "error"):
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
            if kind in ("answer", "error"):
                return kind, value
        raise AssertionError("a run always ends with an answer or an error")

    def _work(self, loop: asyncio.AbstractEventLoop) -> None:
        def put(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
            except RuntimeError:
                pass  # the event loop has closed (the server stopped): nobody left to tell

        def on_sentence(shown: Shown) -> None:
            put("sentence", shown)

        def on_token(piece: str) -> None:
            put("token", piece)

        end: tuple[str, Any]
        try:
            reply = self.service.answer(self.principal, self.exchange, on_sentence=on_sentence,
                                        on_token=on_token if self.tokens else None,
                                        stop=self._stop.is_set)
        except Exception as exc:
            if not isinstance(exc, EnclaveError):
                log.exception("answering failed")
            end = ("error", exc)
        else:
            end = ("answer", reply)
        finally:
            # The slot is free before anyone hears of the end: a client that has its answer
            # and asks again at once must find it free, not be told all slots are busy.
            self.lease.release()
        put(*end)


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


async def answer(service: AnswerService, gate: AnswerGate, principal: Principal,
                 exchange: Exchange, request: Request | None = None) -> Reply:
    """A plain (not streamed) answer, under an answer slot."""
    run = AnswerRun(service, gate.take(exchange.channel), principal, exchange)
    try:
        run.start()
        return await run.reply(request)
    finally:
        run.close()


def stream(service: AnswerService, gate: AnswerGate, principal: Principal, exchange: Exchange,
           tokens: bool) -> AnswerRun:
    """A streamed answer's run. The slot is taken here, before the response starts, so a
    full server answers 503 rather than a broken stream; wrap the events in AnswerStream."""
    return AnswerRun(service, gate.take(exchange.channel), principal, exchange, tokens=tokens)


def error_body(exc: BaseException) -> dict[str, str]:
    """What a stream says when answering fails midway (the status line has gone already)."""
    if isinstance(exc, EnclaveError):
        return {"error": status_of(exc)[1], "detail": str(exc)}
    return {"error": "internal", "detail": "internal error; see the server log"}


def event(kind: str, data: Any) -> dict[str, str]:
    return {"event": kind, "data": json.dumps(data)}
