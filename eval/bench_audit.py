"""What the audit trail costs: appends per second (one and several writers), against plain
inserts of the same rows without the chain, and how fast ``verify`` walks the chain.

Each record is shaped like an answer's: a ~3 KB body and five ~1 KB passages to keep.
Runs in a scratch database: a temporary SQLite file, or a temporary PostgreSQL database
created on the server given (and dropped afterwards).
"""

from __future__ import annotations

import multiprocessing
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.audit import AuditLog, AuditRow, Event, Passage, canonical, now_iso
from core.db import Database


def bench_audit(postgres: str | None, records: int = 2000, writers: int = 4) -> dict[str, Any]:
    with _scratch(postgres) as url:
        db = Database(url)
        try:
            baseline = _plain_inserts(db, records)
            log = AuditLog(db)
            latencies = []
            start = time.perf_counter()
            for i in range(records):
                began = time.perf_counter()
                log.append(_event(i))
                latencies.append(time.perf_counter() - began)
            chained = time.perf_counter() - start
            context = multiprocessing.get_context("spawn")
            each = max(1, records // writers)
            with context.Pool(writers) as pool:
                start = time.perf_counter()
                pool.starmap(_append_many, [(url, each, w) for w in range(writers)])
                parallel = time.perf_counter() - start
            start = time.perf_counter()
            result = log.verify()
            walked = time.perf_counter() - start
        finally:
            db.close()
    latencies.sort()
    return {
        "database": url.split(":", 1)[0],
        "records": records,
        "plain_inserts_per_s": round(records / baseline, 1),
        "appends_per_s": round(records / chained, 1),
        "append_vs_plain_insert": round(baseline / chained, 3),
        "append_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "append_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 2),
        "writers": writers,
        "parallel_appends_per_s": round(each * writers / parallel, 1),
        "verify_records": result.records,
        "verify_intact": result.intact,
        "verify_records_per_s": round(result.records / walked, 1),
    }


def _event(i: int, writer: int = 0) -> Event:
    passages = [Passage(str(uuid.uuid4()), str(uuid.uuid4()), "v" * 64, f"/share/doc-{p}.pdf",
                        f"Passage {p} of answer {i} by {writer}. " + "lorem ipsum " * 85)
                for p in range(5)]
    answer = "An answer sentence [1]. " * 20
    body = {"question": f"question {i}", "answer": answer,
            "retrieved": [{"chunk_id": p.chunk_id, "score": 0.5, "rank": r}
                          for r, p in enumerate(passages, 1)],
            "checks": [{"text": "An answer sentence.", "score": 0.81}] * 10}
    return Event("answer", f"user{writer}", body, question=f"question {i}",
                 answer=answer, refused=False, passages=passages)


def _append_many(url: str, n: int, writer: int) -> None:
    db = Database(url)
    log = AuditLog(db)
    for i in range(n):
        log.append(_event(i, writer))
    db.close()


def _plain_inserts(db: Database, n: int) -> float:
    """The same rows, one transaction each, without the head lock, the chain or kept texts."""
    start = time.perf_counter()
    for i in range(n):
        event = _event(i)
        with db.session() as s:
            s.add(AuditRow(seq=-(i + 1), record_id=str(uuid.uuid4()), kind=event.kind,
                           at=now_iso(), actor=event.actor, refused=False, unsupported=0,
                           question=event.question, answer=event.answer,
                           body=canonical(dict(event.body)).decode(), prev_hash="0" * 64,
                           hash="0" * 64))
    seconds = time.perf_counter() - start
    with db.session() as s:
        s.query(AuditRow).filter(AuditRow.seq < 0).delete()
    return seconds


@contextmanager
def _scratch(postgres: str | None) -> Iterator[str]:
    if postgres is None:
        with tempfile.TemporaryDirectory(prefix="enclave-bench-audit-") as folder:
            yield f"sqlite:///{Path(folder) / 'audit.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"enclave_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
