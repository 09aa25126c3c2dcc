"""Request ids, the access log and Prometheus metrics on a real HTTP server."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.logs import configure
from core.settings import LogSettings
from tests.serve.conftest import Api

REDIS = "redis://127.0.0.1:6379/9"


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        sample, _, rest = metric.partition("{")
        found = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if sample == name and found == wanted:
            return float(value)
    return 0.0


@pytest.fixture
def served(api_factory: Callable[..., Api], samples: dict[str, Path]) -> Iterator[Api]:
    api = api_factory(serve={"rate_per_minute": 1000},
                      jobs={"mode": "celery", "broker_url": REDIS,
                            "queue": f"enclave-test-{uuid.uuid4().hex[:10]}",
                            "allowed_roots": [samples["public"]]})
    assert not api.container.ingestor.ingest([samples["public"]]).failed
    yield api


def test_request_ids_are_echoed_made_or_replaced(served: Api) -> None:
    given = served.http.get("/v1/models", headers={"X-Request-ID": "trace-42.a:b"})
    assert given.headers["x-request-id"] == "trace-42.a:b"
    made = served.http.get("/v1/models").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    # A header that could forge log lines or is absurdly long is not taken as it is.
    for bad in ("a b\tc", "x" * 200):
        echoed = served.http.get("/v1/models", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert echoed != bad and re.fullmatch(r"[0-9a-f]{32}", echoed)
    # Refusals carry one too: a 401, and a 404 of an unknown route.
    assert "x-request-id" in httpx.get(f"{served.base}/v1/models").headers
    assert "x-request-id" in served.http.get("/no/such/route").headers


def test_metrics_count_requests_answers_tokens_and_backlog(served: Api) -> None:
    before = served.http.get("/metrics").text
    key = served.container.users.add("mia", (), ("employee",))
    chat = served.http.post("/v1/chat", json={"question": "How many days of paid leave?"},
                            headers={"Authorization": f"Bearer {key}"})
    assert chat.status_code == 200, chat.text
    outcome = chat.json()["outcome"]
    job = served.http.post("/v1/admin/jobs", json={"paths": [str(served.container.settings
                                                                 .jobs.allowed_roots[0])]})
    assert job.status_code == 202, job.text
    after = served.http.get("/metrics")
    assert after.status_code == 200
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text

    def grew(name: str, **labels: str) -> float:
        return _sample(text, name, **labels) - _sample(before, name, **labels)

    assert grew("enclave_http_request_duration_seconds_count",
                method="POST", route="/v1/chat", status="200") == 1
    assert grew("enclave_answers_total", outcome=outcome) == 1
    assert grew("enclave_answer_stage_seconds_count", stage="retrieve") == 1
    if outcome != "not_found":  # the model ran
        assert grew("enclave_llm_tokens_total", kind="completion") > 0
        assert grew("enclave_llm_tokens_total", kind="prompt") > 0
    # Unmatched paths share one label: scanning random URLs cannot grow the metrics.
    served.http.get(f"/{uuid.uuid4().hex}")
    assert _sample(served.http.get("/metrics").text, "enclave_http_request_duration_seconds_count",
                   method="GET", route="unmatched", status="404") >= 1
    # Read at scrape time: what is searchable, the job's items, the broker's queue.
    totals = served.container.registry.totals()
    assert _sample(text, "enclave_documents") == totals["documents"] > 0
    assert _sample(text, "enclave_chunks") == totals["chunks"]
    assert _sample(text, "enclave_queue_depth", queue=served.container.settings.jobs.queue) == 1
    assert "enclave_job_items{" in text
    # No label or value carries content: no question, no document name.
    assert "paid leave" not in text and ".md" not in text


def test_a_metrics_token_guards_the_scrape(api_factory: Callable[..., Api]) -> None:
    api = api_factory(serve={"metrics_token": "s3cret-scrape-token"})
    assert httpx.get(f"{api.base}/metrics").status_code == 401
    wrong = httpx.get(f"{api.base}/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "s3cret" not in wrong.text
    ok = httpx.get(f"{api.base}/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"})
    assert ok.status_code == 200 and "enclave_http_request_duration_seconds" in ok.text
    # An admin's key serves as well as the token.
    assert api.http.get("/metrics").status_code == 200


def test_metrics_are_never_open(api_factory: Callable[..., Api]) -> None:
    """Without a metrics token set, a scrape still needs an admin: the document and chunk
    counts include documents most callers may not read."""
    api = api_factory()
    bare = httpx.get(f"{api.base}/metrics")
    assert bare.status_code == 401 and bare.json()["error"] == "unauthenticated"
    assert "enclave_documents" not in bare.text
    assert bare.headers["www-authenticate"] == "Bearer"
    employee = api.container.users.add("eve", (), ("employee",))
    refused = httpx.get(f"{api.base}/metrics", headers={"Authorization": f"Bearer {employee}"})
    assert refused.status_code == 403 and "enclave_documents" not in refused.text
    unknown = httpx.get(f"{api.base}/metrics", headers={"Authorization": "Bearer ek_guess"})
    assert unknown.status_code == 401
    admin = api.http.get("/metrics")
    assert admin.status_code == 200 and "enclave_documents" in admin.text


def test_access_log_is_json_with_the_request_id_and_no_query(
    served: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(LogSettings(format="json", level="INFO"))
    try:
        capsys.readouterr()
        key = served.container.users.add("ada", (), ("auditor",))
        served.http.get("/v1/audit/records", params={"text": "quarterly bonus secret"},
                        headers={"Authorization": f"Bearer {key}", "X-Request-ID": "rid-777"})
        # The access line is written once the response has gone out: on a busy machine the
        # client can read the response before the server's thread has logged it.
        lines: list[dict[str, Any]] = []
        deadline = time.monotonic() + 10
        while not _access(lines) and time.monotonic() < deadline:
            time.sleep(0.05)
            lines += [json.loads(line) for line in capsys.readouterr().err.splitlines()
                      if line.strip()]
    finally:
        configure(LogSettings())
        logging.getLogger().setLevel(logging.WARNING)
    access = _access(lines)
    assert len(access) == 1, lines
    assert access[0]["route"] == "/v1/audit/records" and access[0]["status"] == 200
    assert access[0]["duration_ms"] >= 0
    assert not any("bonus" in json.dumps(r) for r in lines)


def _access(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in lines if r["logger"] == "serve.access" and r["request_id"] == "rid-777"]
