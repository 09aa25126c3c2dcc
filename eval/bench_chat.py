"""``enclave bench chat``: N concurrent chats against a running server.

Prints latency percentiles of the answered requests, throughput, and every other outcome
by status: at the configured concurrency there should be none; beyond it, clean 503s
(answer slots full) or 429s (rate limit), each with Retry-After, and never a 5xx else.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import Counter
from typing import Any

import httpx


async def _fire(url: str, key: str, question: str, concurrency: int, requests: int,
                timeout_s: float) -> dict[str, Any]:
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

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started

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
    }


def bench_chat(url: str, key: str, question: str, concurrency: list[int], requests: int,
               timeout_s: float = 300.0) -> dict[str, Any]:
    runs = [asyncio.run(_fire(url, key, question, n, requests, timeout_s)) for n in concurrency]
    base = runs[0]["answers_per_s"] or 1.0
    for run in runs:
        run["throughput_vs_first"] = round(run["answers_per_s"] / base, 2)
    return {"url": url, "question": question, "runs": runs}
