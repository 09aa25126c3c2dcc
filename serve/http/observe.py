"""Request ids, the access log and request latency: one ASGI middleware around the app.

The request id is the caller's ``X-Request-ID`` when it is a sane token, otherwise a new
one; it is sent back in the response and set for everything the request does (logs, the
audit record's process, worker tasks it queues). The access log names the route template
(``/v1/documents/{doc_id}``), never the query string: auditors' text filters are content.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.logs import REQUEST_ID
from core.metrics import HTTP_SECONDS

log = logging.getLogger("serve.access")
HEADER = "x-request-id"
_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() == HEADER.encode():
            candidate = value.decode("latin-1").strip()
            if _SANE.fullmatch(candidate):
                return candidate
    return uuid.uuid4().hex


class Observe:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope["headers"])
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (HEADER.encode(), request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _template(scope)
            HTTP_SECONDS.labels(scope["method"], route, str(status)).observe(elapsed)
            # Probes and scrapes come every few seconds; at INFO they would bury the requests.
            level = logging.DEBUG if route in _PROBES else logging.INFO
            log.log(level, "%s %s %d %.1f ms", scope["method"], route, status, elapsed * 1000,
                     extra={"method": scope["method"], "route": route, "status": status,
                            "duration_ms": round(elapsed * 1000, 1)})
            REQUEST_ID.reset(token)


def _template(scope: Scope) -> str:
    # Starlette's router records the matched route in the scope; an unmatched path gets one
    # label, so a scan of random URLs cannot grow the metrics without bound.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
