"""Prometheus metrics, defined once; every process records into its own default registry.

``enclave serve`` exposes them at ``GET /metrics`` with the figures read at scrape time
(queue depth, job items by status); ``enclave worker`` on ``ENCLAVE_JOBS__METRICS_PORT``,
its prefork processes aggregated through prometheus_client's multiprocess mode. No label
ever holds a question, a document name or other content: labels are closed sets.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

HTTP_SECONDS = Histogram(
    "enclave_http_request_duration_seconds", "HTTP requests, by route template and status.",
    ["method", "route", "status"], buckets=_FAST,
)
ANSWER_STAGE_SECONDS = Histogram(
    "enclave_answer_stage_seconds",
    "Time answering spends in each stage: rewrite, retrieve, relevance, generate, verify, total.",
    ["stage"], buckets=_FAST,
)
ANSWERS = Counter("enclave_answers_total",
                  "Questions, by outcome: answered, not_found, unverified or error.", ["outcome"])
LLM_TOKENS = Counter(
    "enclave_llm_tokens_total",
    "Model tokens: prompt (as the generator counts them) and completion (streamed).", ["kind"],
)
INGEST_DOCUMENTS = Counter(
    "enclave_ingest_documents_total", "Files an ingest finished, by outcome.", ["outcome"],
)
INGEST_CHUNKS = Counter("enclave_ingest_chunks_total", "Chunks written to the store.")
INGEST_PAGES = Counter("enclave_ingest_pages_total", "Pages of ingested documents.")
INGEST_STAGE_SECONDS = Counter(
    "enclave_ingest_stage_seconds_total", "Time ingestion spends in each stage.", ["stage"],
)
ANSWER_STAGES = ("rewrite", "retrieve", "relevance", "generate", "verify", "total")
INGEST_STAGES = ("parse", "chunk", "embed", "store")
