"""A cap on request bodies: a declared length over it is refused at once, and a body without
one (chunked) is read up to the cap and refused when it passes it (413 either way)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, exempt_prefix: str) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Uploads to the admin API have their own, larger limit (ENCLAVE_JOBS__MAX_UPLOAD_MB).
        self.exempt_prefix = exempt_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefix):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        # Read it all here (it is small: at most the cap), so the refusal is ours to send.
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            body.extend(message.get("body", b""))
            more = bool(message.get("more_body", False))
            if len(body) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        await self.app(scope, _replay([{"type": "http.request", "body": bytes(body),
                                        "more_body": False}], receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response: Any = JSONResponse({"error": "too_large", "detail": self._detail()},
                                     status_code=413)
        await response(scope, receive, send)

    def _detail(self) -> str:
        return f"the request body is over {self.max_bytes // 1024} KB"


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    """Hand the app what was read already, then whatever comes next (a disconnect)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive
