"""``enclave bench chat``: N concurrent chats against a running server.

Prints latency percentiles of the answered requests, throughput, and every other outcome
by status: at the configured concurrency there should be none; beyond it, clean 503s
(answer slots full) or 429s (rate limit), each with Retry-After, and never a 5xx else.

With ``--stream`` the chats are streamed and each is timed three times over: to the model's
first raw token (sent only by a server started with ENCLAVE_SERVE__STREAM_RAW_TOKENS=true,
a debugging setting: the same stream then carries both), to the first verified sentence (what
a reader first sees), and to the whole answer.

Tokens per answer (prompt, completion) come from the server's ``enclave_llm_tokens_total``,
read from ``/metrics`` before and after each run: the model's own counts where it gives them,
else the estimates the answers recorded. They need a key that may read the metrics (the
metrics token, or an admin's); with another they are None.
"""

from __future__ import annotations

import asyncio
import math
import re
import statistics
import time
from collections import Counter
from typing import Any

import httpx

_TOKENS = re.compile(r'^enclave_llm_tokens_total\{kind="(\w+)"\} (\S+)$', re.MULTILINE)


async def _tokens(client: httpx.AsyncClient, metrics_key: str) -> dict[str, float] | None:
    """The server's model token counters so far, or None where the key may not read them."""
    try:
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {metrics_key}"})
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return {kind: float(value) for kind, value in _TOKENS.findall(response.text)}


def _per_answer(before: dict[str, float] | None, after: dict[str, float] | None,
                answered: int) -> dict[str, float | None]:
    out: dict[str, float | None] = {"prompt_tokens_per_answer": None,
                                    "completion_tokens_per_answer": None}
    if before is None or after is None or not answered:
        return out
    for kind in ("prompt", "completion"):
        out[f"{kind}_tokens_per_answer"] = round(
            (after.get(kind, 0.0) - before.get(kind, 0.0)) / answered, 1)
    return out


async def _fire(url: str, key: str, question: str, concurrency: int, requests: int,
                timeout_s: float, metrics_key: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    retry_after_missing = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(n)

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout_s) as client:
        async def worker() -> None:
            nonlocal retry_after_missing
            while not queue.empty():
                queue.get_nowait()
                started = time.perf_counter()
                try:
                    response = await client.post("/v1/chat", json={"question": question})
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    continue
                statuses[str(response.status_code)] += 1
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                elif response.status_code in (429, 503) and "retry-after" not in response.headers:
                    retry_after_missing += 1

        tokens_before = await _tokens(client, metrics_key)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        tokens_after = await _tokens(client, metrics_key)

    latencies.sort()
    return {
        "concurrency": concurrency,
        "requests": requests,
        "answered": len(latencies),
        "statuses": dict(statuses),
        "errors": sum(n for s, n in statuses.items() if s not in ("200", "429", "503")),
        "rejected_without_retry_after": retry_after_missing,
        "seconds": round(elapsed, 2),
        "answers_per_s": round(len(latencies) / elapsed, 3) if elapsed else 0.0,
        "p50_s": round(statistics.median(latencies), 3) if latencies else None,
        # Nearest rank: the smallest latency at or above 95% of the answered requests.
        "p95_s": round(latencies[math.ceil(0.95 * len(latencies)) - 1], 3) if latencies else None,
        **_per_answer(tokens_before, tokens_after, len(latencies)),
    }


async def _stream(url: str, key: str, question: str, concurrency: int, requests: int,
                  timeout_s: float, metrics_key: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    first_token: list[float] = []
    first_sentence: list[float] = []
    total: list[float] = []
    statuses: Counter[str] = Counter()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(n)

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout_s) as client:
        async def one() -> None:
            started = time.perf_counter()
            seen: dict[str, float] = {}
            async with client.stream("POST", "/v1/chat",
                                     json={"question": question, "stream": True}) as response:
                statuses[str(response.status_code)] += 1
                if response.status_code != 200:
                    return
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        seen.setdefault(line.split(":", 1)[1].strip(), time.perf_counter() - started)
            if "answer" not in seen:
                statuses["no answer event"] += 1
                return
            total.append(seen["answer"])
            # An answer with no verified sentence (not found, unverified) shows its first
            # words with the answer event.
            first_sentence.append(seen.get("sentence", seen["answer"]))
            if "token" in seen:
                first_token.append(seen["token"])

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                try:
                    await one()
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1

        tokens_before = await _tokens(client, metrics_key)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        tokens_after = await _tokens(client, metrics_key)
    return {
        "concurrency": concurrency, "requests": requests, "answered": len(total),
        "statuses": dict(statuses), "seconds": round(elapsed, 2),
        "first_raw_token": _percentiles(first_token),
        "first_verified_sentence": _percentiles(first_sentence),
        "whole_answer": _percentiles(total),
        **_per_answer(tokens_before, tokens_after, len(total)),
    }


def _percentiles(values: list[float]) -> dict[str, float | None]:
    values = sorted(values)
    if not values:
        return {"p50_s": None, "p95_s": None}
    return {"p50_s": round(statistics.median(values), 3),
            "p95_s": round(values[math.ceil(0.95 * len(values)) - 1], 3)}


def bench_stream(url: str, key: str, question: str, concurrency: list[int], requests: int,
                 timeout_s: float = 300.0, metrics_key: str | None = None) -> dict[str, Any]:
    runs = [asyncio.run(_stream(url, key, question, n, requests, timeout_s, metrics_key or key))
            for n in concurrency]
    return {"url": url, "question": question, "runs": runs}


def bench_chat(url: str, key: str, question: str, concurrency: list[int], requests: int,
               timeout_s: float = 300.0, metrics_key: str | None = None) -> dict[str, Any]:
    """``metrics_key``: for the token counts, where ``key`` (a chat user's) may not read them."""
    runs = [asyncio.run(_fire(url, key, question, n, requests, timeout_s, metrics_key or key))
            for n in concurrency]
    base = runs[0]["answers_per_s"] or 1.0
    for run in runs:
        run["throughput_vs_first"] = round(run["answers_per_s"] / base, 2)
    return {"url": url, "question": question, "runs": runs}
