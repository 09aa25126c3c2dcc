"""Stalled clients against the real server (serve/server.py, as `enclave serve` runs it): raw
sockets that send half their headers, nothing at all, or less body than they promised are
cut off at their deadline, while everyone else is served."""

from __future__ import annotations

import json
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from tests.serve.conftest import Api

HEADER_S = 2.0
BODY_S = 3.0
SLACK_S = 3.0  # "within a few seconds of the deadline" on a loaded 2-core machine


@dataclass
class Stalled:
    kind: str
    sock: socket.socket
    opened: float
    trickle: bytes = b""
    received: bytearray = field(default_factory=bytearray)
    closed_after: float | None = None

    def status(self) -> int | None:
        head = bytes(self.received).split(b"\r\n", 1)[0].split()
        return int(head[1]) if len(head) > 1 and head[1].isdigit() else None

    def json_body(self) -> dict[str, str]:
        _, _, body = bytes(self.received).partition(b"\r\n\r\n")
        parsed: dict[str, str] = json.loads(body)
        return parsed


@pytest.fixture
def api(api_factory: Callable[..., Api]) -> Api:
    return api_factory(serve={"header_timeout_s": HEADER_S, "body_timeout_s": BODY_S,
                              "rate_per_minute": 10_000})


def _open(api: Api, kind: str, payload: bytes, trickle: bytes = b"") -> Stalled:
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=5)
    if payload:
        sock.sendall(payload)
    sock.setblocking(False)
    return Stalled(kind, sock, time.monotonic(), trickle)


def _wait_until_closed(stalled: list[Stalled], limit_s: float) -> None:
    """Read every socket until the server closes it (or the limit passes); tricklers send
    one more byte of their endless headers every 0.2 s meanwhile."""
    selector = selectors.DefaultSelector()
    for s in stalled:
        selector.register(s.sock, selectors.EVENT_READ, s)
    open_ = set(range(len(stalled)))
    deadline = time.monotonic() + limit_s
    next_trickle = time.monotonic()
    while open_ and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.05):
            s = key.data
            try:
                chunk = s.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if chunk:
                s.received.extend(chunk)
                continue
            s.closed_after = time.monotonic() - s.opened
            selector.unregister(s.sock)
            open_.discard(stalled.index(s))
        if time.monotonic() >= next_trickle:
            next_trickle += 0.2
            for s in stalled:
                if s.trickle and s.closed_after is None:
                    try:
                        s.sock.send(s.trickle)
                    except OSError:
                        pass  # closed by the server: the next recv sees it
    selector.close()


def test_stalled_connections_are_closed_at_their_deadline_while_others_are_served(
        api: Api) -> None:
    chat_head = (b"POST /v1/chat HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 4096\r\n\r\n")
    upload_head = (b"POST /v1/admin/jobs HTTP/1.1\r\nHost: t\r\n"
                   b"Authorization: Bearer " + api.admin_key.encode() + b"\r\n"
                   b"Content-Type: multipart/form-data; boundary=xyz\r\n"
                   b"Content-Length: 50000000\r\n\r\n--xyz\r\n")
    stalled: list[Stalled] = []
    try:
        for i in range(100):
            match i % 5:
                case 0:
                    stalled.append(_open(api, "silent", b""))
                case 1:
                    stalled.append(_open(api, "headers", b"GET /healthz HTTP/1.1\r\nHost: t\r\n"))
                case 2:
                    # Slowloris: a header byte every 0.2 s, never the blank line that ends them.
                    stalled.append(_open(api, "trickle", b"GET /healthz HTTP/1.1\r\nX-a: ",
                                         trickle=b"a"))
                case 3:
                    stalled.append(_open(api, "body", chat_head + b'{"question": "'))
                case 4:
                    # Admin uploads are exempt from the size cap, not from the deadline.
                    stalled.append(_open(api, "upload", upload_head))

        # Everyone else is served meanwhile.
        started = time.monotonic()
        ok = httpx.get(f"{api.base}/healthz", timeout=5)
        models = api.http.get("/v1/models", timeout=5)
        assert ok.status_code == 200 and models.status_code == 200, (ok.text, models.text)
        # Served while every stalled connection still waits for its deadline.
        assert time.monotonic() - started < HEADER_S - 0.5

        _wait_until_closed(stalled, BODY_S + SLACK_S + 2)
    finally:
        for s in stalled:
            s.sock.close()

    for s in stalled:
        limit = BODY_S if s.kind in ("body", "upload") else HEADER_S
        assert s.closed_after is not None, f"{s.kind}: still open after {limit + SLACK_S} s"
        # Not refused on sight: held until the deadline, then closed soon after it.
        assert limit - 0.3 <= s.closed_after <= limit + SLACK_S, (s.kind, s.closed_after)
        if s.kind == "silent":
            assert s.received == b"", s.received
        else:
            assert s.status() == 408, (s.kind, bytes(s.received[:200]))
            body = s.json_body()
            assert body["error"] == "request_timeout" and body["detail"], body

    # And the server is still there for the next caller.
    assert httpx.get(f"{api.base}/healthz", timeout=5).status_code == 200


def test_a_slow_body_that_keeps_moving_is_not_cut_off(api: Api) -> None:
    """The body deadline is per part: a body slower in total than the deadline arrives."""
    body = json.dumps({"question": "How many days of paid leave do employees get?"}).encode()
    parts = [body[:10], body[10:20], body[20:]]
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        for part in parts:
            time.sleep(BODY_S * 0.6)
            sock.sendall(part)
        reply = sock.recv(65536)
    # Read in full and handed on: refused for want of a key, not for slowness.
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]


def test_a_connection_kept_alive_must_send_its_next_headers_in_time(api: Api) -> None:
    """The deadline starts again at each response, and bytes do not extend it."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        answered = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        received = b""
        while chunk := _recv_trickling(sock, b"X-b: b\r\n", 0.2):
            received += chunk
        waited = time.monotonic() - answered
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert HEADER_S - 0.3 <= waited <= HEADER_S + SLACK_S, waited


def _recv_trickling(sock: socket.socket, trickle: bytes, every_s: float) -> bytes:
    """The next bytes from the server, sending ``trickle`` every ``every_s`` until they come."""
    sock.settimeout(every_s)
    for _ in range(int((HEADER_S + SLACK_S) / every_s) + 1):
        try:
            return sock.recv(65536)
        except TimeoutError:
            try:
                sock.sendall(trickle)
            except OSError:
                return b""
    raise AssertionError("the server never closed the connection")
