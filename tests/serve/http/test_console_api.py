"""GET /v1/admin/health through a real server: the checks, counts, disk and models, read
from the real registry, store and database; a broker that is down is named, not a 500."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.serve.conftest import Api, bearer_client


def test_health_counts_what_is_there_and_names_a_disagreement(
        api_factory: Callable[..., Api], samples: dict[str, Path]) -> None:
    api = api_factory(answer={"mode": "extractive"})
    c = api.container
    report = c.ingestor.ingest([samples["public"]])
    assert not report.failed
    reply = api.http.get("/v1/admin/health")
    assert reply.status_code == 200, reply.text
    health = reply.json()
    assert health["ready"] is True
    assert health["checks"] == {"database": "ok", "store": "ok", "model": "ok"}
    counts = health["counts"]
    assert counts["documents"] == len(report.files) and counts["chunks"] > 0
    assert counts["stored_chunks"] == counts["chunks"] and counts["failed_documents"] == 0
    assert counts["queue_depth"] is None  # inline jobs: no broker
    assert health["disagreements"] == [] and health["problems"] == {}
    disk = health["disk_bytes"]
    assert disk["store"] > 0 and disk["database"] > 0 and disk["uploads"] == 0
    assert health["models"] == {"answers": "extractive (no model)", "llm_mode": "llama-cpp",
                                "embedder": c.embedder.fingerprint}

    # The store loses a document's points behind the registry's back: the view says so.
    doc_id = report.files[0].doc_id
    assert doc_id is not None
    with c.store.session():
        c.store.delete(doc_id)
    health = api.http.get("/v1/admin/health").json()
    assert health["counts"]["stored_chunks"] < health["counts"]["chunks"]
    assert [d.split(":")[0] for d in health["disagreements"]] == [doc_id]

    employee = bearer_client(api, c.users.add("emma", (), ("employee",)))
    assert employee.get("/v1/admin/health").status_code == 403


def test_health_names_a_broker_that_is_down(api_factory: Callable[..., Api]) -> None:
    api = api_factory(jobs={"mode": "celery", "broker_url": "amqp://guest:guest@127.0.0.1:9//"})
    reply = api.http.get("/v1/admin/health")
    assert reply.status_code == 200, reply.text
    health = reply.json()
    assert health["ready"] is False
    assert health["checks"]["broker"].startswith("unavailable: ")
    assert health["checks"]["database"] == "ok"
    assert health["counts"]["queue_depth"] is None
    assert health["problems"]["broker"].startswith("unavailable: ")
