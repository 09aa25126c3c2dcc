"""The uvicorn server that runs the app: ``enclave serve`` and the tests build it here alike.

uvicorn has no deadline for request headers: a client that connects and trickles a header
byte now and then (slowloris) holds its connection for ever. Its HTTP protocol is subclassed
here to give one; the deadline for bodies is the app's (serve/body_timeout.py), because only
the app knows when it waits for a body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from core.settings import ServeSettings

log = logging.getLogger(__name__)


def _timeout_response() -> bytes:
    body = json.dumps({"error": "request_timeout",
                       "detail": "the request headers did not arrive in time"}).encode()
    head = ("HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


class HeaderDeadlineProtocol(H11Protocol):
    """h11 (pinned, rather than uvicorn's "auto", which would take httptools where it is
    installed), with a deadline from the connection or the previous response to complete
    request headers. While a request is with the app the deadline is off: the app answers
    or times out the body itself. Reset by a response, never by bytes, so trickling does not
    extend it."""

    header_timeout_s: float = 10.0
    _TIMEOUT = _timeout_response()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        self._cancel()
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _watch(self) -> None:
        with_app = self.cycle is not None and not self.cycle.response_complete
        # An upgrade (WebSocket) hands the transport to another protocol: no longer ours.
        handed_on = self.transport.get_protocol() is not self
        if with_app or handed_on or self.transport.is_closing():
            self._cancel()
        elif self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout_s, self._expire)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        partial, _ = self.conn.trailing_data
        # Half a request gets an answer; an idle connection, or the unread rest of a body
        # already answered, is simply closed.
        if self.conn.their_state is h11.IDLE and partial:
            self.transport.write(self._TIMEOUT)
        log.debug("closed a connection after %.0f s without complete request headers",
                  self.header_timeout_s)
        self.transport.close()


def protocol_for(settings: ServeSettings) -> type[H11Protocol]:
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,),
                {"header_timeout_s": settings.header_timeout_s})


def build_server(app: Any, settings: ServeSettings, host: str | None = None,
                 port: int | None = None) -> uvicorn.Server:
    """The server for ``app``: enclave's logging (JSON, request ids, no content) and access
    log rather than uvicorn's, and the request deadlines of ``settings``."""
    config = uvicorn.Config(
        app, host=host or settings.host, port=port or settings.port,
        http=protocol_for(settings), log_config=None, access_log=False,
        # No limit_concurrency: it counts open connections, so stalled clients would get
        # real requests refused (503) until their deadline; each waiting connection costs
        # a socket and a timer, not a task. The listen backlog absorbs bursts of connects.
        limit_concurrency=None, backlog=2048,
    )
    return uvicorn.Server(config)


def raise_open_files_limit() -> None:
    """Let the process hold as many sockets as the system allows it: with the default soft
    limit (often 1024), a few hundred stalled connections could make accept() fail for
    everyone before their deadlines close them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return
    wanted = 1 << 16 if hard == resource.RLIM_INFINITY else hard
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            log.warning("could not raise the open files limit from %d", soft)
