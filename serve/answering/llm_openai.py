"""The deployed generator: any OpenAI-compatible chat endpoint (vLLM in production).

One deadline covers the whole generation, retries included, so a server that is down or
slow gives a clear :class:`ModelError` within ``timeout_s`` rather than a hang. Retries
happen only while nothing has been received: a reply is never stitched from two attempts.

The stream asks for the server's own token counts (``stream_options.include_usage``: OpenAI,
vLLM): they arrive in a last chunk with no choices and become the reply's ``usage``. A server
that sends none leaves it None, and the caller estimates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Sequence
from typing import Any

import httpx
import openai

from core.errors import ModelError, one_line
from core.ports import Generation, Message, Usage

log = logging.getLogger(__name__)


class OpenAICompatibleGenerator:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None,
        context_tokens: int,
        timeout_s: float,
        connect_retries: int,
        temperature: float,
    ) -> None:
        self.name = model
        self.context_tokens = context_tokens
        self.timeout_s = timeout_s
        self.connect_retries = connect_retries
        self.temperature = temperature
        self.base_url = base_url
        # Until a server refuses the option (one that predates it and rejects unknown fields).
        self._ask_usage = True
        # max_retries=0: retries are ours, bounded by the deadline and never mid-reply.
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "unused", max_retries=0, timeout=timeout_s
        )

    def count_tokens(self, text: str) -> int:
        # The tokenizer lives on the server; BPE tokens of English average about four
        # bytes, so a third of the bytes is a safe upper estimate for fitting the context.
        return len(text.encode("utf-8")) // 3 + 1

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Generation:
        return Generation(self._pieces(messages, max_tokens))

    def _pieces(self, messages: Sequence[Message], max_tokens: int) -> Generator[str, None, Usage | None]:
        deadline = time.monotonic() + self.timeout_s
        stream = self._open(messages, max_tokens, deadline)
        usage: Usage | None = None
        try:
            for chunk in stream:
                if chunk.choices:
                    piece = chunk.choices[0].delta.content
                    if piece:
                        yield piece
                # Usually alone in the last chunk; some servers put it on the last content
                # chunk, or on every chunk as a running total: the last one seen is the whole.
                usage = _usage(getattr(chunk, "usage", None)) or usage
                if time.monotonic() > deadline:
                    raise self._too_slow()
        except openai.APITimeoutError as exc:
            raise self._too_slow() from exc
        except (openai.APIError, httpx.HTTPError) as exc:
            raise ModelError(f"the model server failed mid-answer: {one_line(exc)}") from exc
        finally:
            stream.close()
        return usage

    def _open(self, messages: Sequence[Message], max_tokens: int, deadline: float) -> Any:
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._too_slow()
            try:
                return self._client.chat.completions.create(  # type: ignore[call-overload]
                    model=self.name,
                    messages=[dict(m) for m in messages],
                    max_tokens=max_tokens,
                    temperature=self.temperature,
                    stream=True,
                    stream_options={"include_usage": True} if self._ask_usage else openai.omit,
                    timeout=httpx.Timeout(remaining, connect=min(remaining, 5.0)),
                )
            except openai.APITimeoutError as exc:
                raise self._too_slow() from exc
            except openai.APIConnectionError as exc:
                attempt += 1
                if attempt > self.connect_retries:
                    raise ModelError(
                        f"the model server at {self.base_url} is unreachable "
                        f"({attempt} attempts): {one_line(exc)}"
                    ) from exc
                time.sleep(min(0.5 * 2 ** (attempt - 1), max(0.0, deadline - time.monotonic())))
            except openai.APIStatusError as exc:
                if self._ask_usage and exc.status_code in (400, 422) and "stream_options" in str(exc):
                    # Nothing was received, so asking again without the option is no stitch.
                    log.warning("the model server at %s refuses stream_options: token counts "
                                "of its answers are estimated", self.base_url)
                    self._ask_usage = False
                    continue
                raise ModelError(
                    f"the model server refused the request (HTTP {exc.status_code}): {one_line(exc)}"
                ) from exc

    def _too_slow(self) -> ModelError:
        return ModelError(f"the model server did not answer within {self.timeout_s:g} s")


def _usage(reported: Any) -> Usage | None:
    prompt = getattr(reported, "prompt_tokens", None)
    completion = getattr(reported, "completion_tokens", None)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt, completion)
