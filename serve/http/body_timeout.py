"""A deadline on each part of a request body: a client that promises more bytes than it sends
is answered 408 and its connection closed, rather than holding it (and a task) for ever.

It sits outside the body limit, which reads bodies itself, so it covers every route, admin
uploads included. The deadline is per part, not per body: a large upload on a slow but
moving link is not cut off. Once the body is complete, ``receive`` only waits for the client
to go away (streamed answers do that for minutes), so it is left without a deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


class BodyTimeout:
    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False
        answered = False
        timed_out = False

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if timed_out:
                return  # the 408 went out already; the app's own reply has no one to go to
            if message["type"] == "http.response.start":
                answered = True
            await send(message)

        async def timed_receive() -> Message:
            nonlocal body_done, timed_out
            if body_done or timed_out:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except TimeoutError:
                if not answered:
                    await send(self._response_start())
                    await send({"type": "http.response.body", "body": self._body()})
                timed_out = True
                log.debug("request body stalled for %.0f s: answered 408", self.timeout_s)
                # What the app hears is what happened: the client is gone for it.
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not timed_out:
                raise
            # The app failed on the disconnect it was handed; the client has its answer.
            log.debug("the app's handling of a stalled body failed", exc_info=True)

    def _body(self) -> bytes:
        return json.dumps({"error": "request_timeout",
                           "detail": f"the request body stalled for over {self.timeout_s:g} s"
                           }).encode()

    def _response_start(self) -> Message:
        return {"type": "http.response.start", "status": 408,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(self._body())).encode()),
                            # uvicorn closes the connection once this response is out.
                            (b"connection", b"close")]}
