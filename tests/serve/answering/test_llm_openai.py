"""The deployed generator path against a real OpenAI-compatible server: llama-cpp-python's
own server, started here on a loopback port with the same GGUF; and against servers that
are down, silent or too slow, which must give a clear error within the deadline."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.container import Container
from core.errors import ModelError
from core.settings import LlmSettings
from core.types import Principal
from serve.answering.answerer import Answerer
from serve.answering.llm_local import default_model_path
from serve.answering.llm_openai import OpenAICompatibleGenerator
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
