"""The deployed generator path against a real OpenAI-compatible server: llama-cpp-python's
own server, started here on a loopback port with the same GGUF; against servers that
are down, silent or too slow, which must give a clear error within the deadline; and against
scripted servers that send (or not) their token counts the way vLLM does."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest

from core.container import Container
from core.errors import ModelError
from core.ports import Usage
from core.settings import LlmSettings
from core.types import Principal
from serve.answering import prompt
from serve.answering.answerer import Answerer
from serve.answering.llm_local import default_model_path
from serve.answering.llm_openai import OpenAICompatibleGenerator
from serve.answering.service import AnswerService
from tests.conftest import free_port, wait_for_http

MODEL = "SmolLM2-135M-Instruct"
MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]


def _generator(base_url: str, timeout_s: float = 60.0, retries: int = 2) -> OpenAICompatibleGenerator:
    return OpenAICompatibleGenerator(
        base_url,
        MODEL,
        api_key=None,
        context_tokens=2048,
        timeout_s=timeout_s,
        connect_retries=retries,
        temperature=0.0,
    )


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("llama-server") / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(default_model_path()),
            "--model_alias",
            MODEL,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_for_http(f"{base}/models", proc, 120)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_the_reply_streams_from_a_real_server(llama_server: str) -> None:
    pieces = list(_generator(llama_server).stream(MESSAGES, 32))
    assert len(pieces) > 1
    assert "".join(pieces).strip()


def test_grounded_answers_through_the_openai_compatible_path(llama_server: str, answering: Container) -> None:
    llm = LlmSettings(base_url=llama_server, model=MODEL)
    assert llm.mode == "openai"
    generator = _generator(llama_server)
    ask = Answerer(
        answering.settings.answer, llm, answering.searcher, answering.answerer.verifier, lambda: generator
    )
    streamed: list[str] = []
    answer = ask.answer(
        "How many days of paid leave does an employee get?", Principal("alice"), on_token=streamed.append
    )
    assert streamed, "tokens reach the caller as they arrive"
    assert answer.model == MODEL
    # Whatever the 135M model wrote, what is shown is verified or the answer is a refusal.
    assert answer.citations
    if answer.refused:
        assert not any(c.supported for c in answer.citations)
    else:
        assert all(c.supported for c in answer.citations)
        print(answer.text, answer.checks)
        assert any("28 days" in c.quote for c in answer.citations)


def test_a_server_that_is_down_is_a_clear_error_after_bounded_retries() -> None:
    started = time.monotonic()
    with pytest.raises(ModelError, match=r"unreachable \(3 attempts\)"):
        list(_generator(f"http://127.0.0.1:{free_port()}/v1", timeout_s=10, retries=2).stream(MESSAGES, 8))
    assert time.monotonic() - started < 10


class _Silent(BaseHTTPRequestHandler):
    """Accepts the request, then says nothing (a hung server)."""

    def do_POST(self) -> None:
        time.sleep(30)

    def log_message(self, *args: object) -> None:
        pass


class _Dripping(BaseHTTPRequestHandler):
    """Starts a streamed reply, then sends a token every half second, forever."""

    def do_POST(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunk = (
            'data: {"id":"x","object":"chat.completion.chunk","created":0,"model":"m",'
            '"choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}]}\n\n'
        )
        try:
            for _ in range(120):
                self.wfile.write(chunk.encode())
                self.wfile.flush()
                time.sleep(0.5)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=[_Silent, _Dripping], ids=["silent", "dripping"])
def slow_server(request: pytest.FixtureRequest) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), request.param)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_a_slow_server_is_a_clear_error_within_the_deadline(slow_server: str, answering: Container) -> None:
    generator = _generator(slow_server, timeout_s=2.0)
    ask = Answerer(
        answering.settings.answer,
        LlmSettings(base_url=slow_server),
        answering.searcher,
        answering.answerer.verifier,
        lambda: generator,
    )
    streamed: list[str] = []
    started = time.monotonic()
    with pytest.raises(ModelError, match="within 2 s"):
        ask.answer(
            "How many days of paid leave does an employee get?", Principal("alice"), on_token=streamed.append
        )
    # No hang; and whatever trickled in is never handed out as an answer.
    assert time.monotonic() - started < 2.0 + 3.0


# -- token counts: the server's own, or an estimate that says so ---------------------------

LEAVE = "How many days of paid leave does an employee get?"
SUPPORTED = "Every employee receives 28 days of paid leave per calendar year [1]."
# Far from anything a third of the bytes would give, so an estimate cannot pass for them.
SERVER_USAGE = {"prompt_tokens": 4321, "completion_tokens": 17, "total_tokens": 4338}


def _chunk(**fields: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
            **fields}


def _reply_chunks(text: str, usage: dict[str, int] | None) -> list[dict[str, Any]]:
    chunks = [_chunk(choices=[{"index": 0, "delta": {"role": "assistant", "content": ""},
                               "finish_reason": None}])]
    chunks += [_chunk(choices=[{"index": 0, "delta": {"content": word}, "finish_reason": None}])
               for word in text.replace(" ", "\0 ").split("\0")]
    chunks.append(_chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    if usage is not None:
        # As vLLM and OpenAI send it: after the last choice, a chunk with none.
        chunks.append(_chunk(choices=[], usage=usage))
    return chunks


@contextmanager
def _scripted(chunks: list[dict[str, Any]], *, refuses_stream_options: bool = False
              ) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A chat completions endpoint that streams ``chunks``; yields its URL and the bodies
    it was sent. ``refuses_stream_options``: a server from before the option, rejecting
    unknown fields (400) as older vLLM releases did."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            if refuses_stream_options and "stream_options" in body:
                error = json.dumps({"object": "error", "type": "BadRequestError", "code": 400,
                                    "message": "stream_options: Extra inputs are not permitted"})
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(error)))
                self.end_headers()
                self.wfile.write(error.encode())
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", received
    finally:
        server.shutdown()
        server.server_close()


def _service(c: Container, generator: OpenAICompatibleGenerator) -> AnswerService:
    ask = Answerer(c.settings.answer, LlmSettings(base_url=generator.base_url, model=MODEL),
                   c.searcher, c.answerer.verifier, lambda: generator)
    return AnswerService(ask, c.registry, c.audit, c.conversations,
                         c.settings.answer.max_question_chars)


def test_the_usage_the_server_reports_is_the_answer_s_and_its_audit_record_s(
    answering: Container,
) -> None:
    with _scripted(_reply_chunks(SUPPORTED, SERVER_USAGE)) as (url, received):
        generator = _generator(url)
        service = _service(answering, generator)
        exchange = service.prepare(Principal("alice"), LEAVE, channel="test")
        reply = service.answer(Principal("alice"), exchange)
    [body] = received
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert reply.answer.outcome == "answered"
    server = {"prompt_tokens": 4321, "completion_tokens": 17}
    assert dict(reply.answer.usage) == server  # and no "estimated"
    assert answering.audit.get(reply.audit_id).body["usage"] == server


def test_the_usage_of_a_stream_is_known_once_it_has_ended() -> None:
    with _scripted(_reply_chunks("Hello there.", SERVER_USAGE)) as (url, _):
        reply = _generator(url).stream(MESSAGES, 16)
        first = next(reply)
        assert reply.usage is None, "not before the end"
        rest = list(reply)
    assert "".join([first, *rest]) == "Hello there."
    assert reply.usage == Usage(4321, 17)


def test_without_usage_from_the_server_the_answer_says_its_counts_are_estimated(
    answering: Container,
) -> None:
    with _scripted(_reply_chunks(SUPPORTED, None)) as (url, received):
        generator = _generator(url)
        counted: list[str] = []
        count = generator.count_tokens

        def spy(text: str) -> int:
            counted.append(text)
            return count(text)

        generator.count_tokens = spy  # type: ignore[method-assign]
        service = _service(answering, generator)
        exchange = service.prepare(Principal("alice"), LEAVE, channel="test")
        reply = service.answer(Principal("alice"), exchange)
    assert received[0]["stream_options"] == {"include_usage": True}
    usage = reply.answer.usage
    assert usage["estimated"] is True
    # The estimate is what context fitting counted (system prompt, question, the passages
    # sent), each text counted once: the messages are not counted again.
    assert counted[:2] == [prompt.SYSTEM, LEAVE] and len(counted) == len(set(counted)) > 2
    sent = received[0]["messages"][-1]["content"]
    assert all(block in sent for block in counted[2:])
    assert usage["prompt_tokens"] == sum(count(t) for t in counted)
    assert usage["completion_tokens"] == len(SUPPORTED.split())  # one token a piece
    assert answering.audit.get(reply.audit_id).body["usage"]["estimated"] is True


def test_a_server_that_refuses_stream_options_is_asked_again_without(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with _scripted(_reply_chunks("Hello there.", None), refuses_stream_options=True) as (
        url, received,
    ):
        generator = _generator(url)
        first = generator.stream(MESSAGES, 16)
        assert "".join(first) == "Hello there." and first.usage is None
        second = generator.stream(MESSAGES, 16)
        assert "".join(second) == "Hello there."
    # Refused once, then never offered again to this server.
    assert ["stream_options" in body for body in received] == [True, False, False]
    assert "refuses stream_options" in caplog.text


def test_a_real_server_takes_the_usage_request_and_what_it_reports_is_kept(
    llama_server: str, answering: Container,
) -> None:
    # llama_cpp.server 0.3 accepts stream_options but streams no usage; a server that does
    # (vLLM, llama.cpp's own server) must report what it reports for the request unstreamed.
    generator = _generator(llama_server)
    reply = generator.stream(MESSAGES, 16)
    assert "".join(reply).strip()
    if reply.usage is not None:
        plain = openai.OpenAI(base_url=llama_server, api_key="unused").chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=16, temperature=0.0)
        assert plain.usage is not None
        assert reply.usage == Usage(plain.usage.prompt_tokens, plain.usage.completion_tokens)
    service = _service(answering, generator)
    answer = service.answer(Principal("alice"), service.prepare(Principal("alice"), LEAVE,
                                                                channel="test")).answer
    assert answer.usage["prompt_tokens"] > 0 and answer.usage["completion_tokens"] > 0
    # Counts the server did not give are flagged, never passed off as its own.
    assert answer.usage.get("estimated", False) is (reply.usage is None)
