"""What the audit trail costs: appends per second (one and several writers), against plain
inserts of the same rows without the chain, what sealing adds to an append, and how fast
``verify`` walks the chain.

Each record is shaped like an answer's: a ~3 KB body and five ~1 KB passages to keep.
Unsealed (chained only) and sealed appends (an Ed25519 seal per record, and a signed
checkpoint appended to a file every ``checkpoint_every`` records) alternate, one of each in
turn, into two scratch databases, so that both see the same machine at the same moment.
Scratch databases are temporary SQLite files, or temporary PostgreSQL databases created on
the server given (and dropped afterwards).
"""

from __future__ import annotations

import multiprocessing
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from core.audit import CHECKPOINT, AuditLog, AuditRow, Event, Filters, Passage, canonical, now_iso
from core.audit_checkpoints import Sealing, open_sealing
from core.audit_texts import text_hash
from core.db import Database

CHECKPOINT_EVERY = 100  # records, as the default setting


def bench_audit(postgres: str | None, records: int = 2000, writers: int = 4) -> dict[str, Any]:
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="enclave-seal-")))
        plain_url = stack.enter_context(_scratch(postgres))
        sealed_url = stack.enter_context(_scratch(postgres))
        plain_db, sealed_db = Database(plain_url), Database(sealed_url)
        stack.callback(plain_db.close)
        stack.callback(sealed_db.close)
        baseline = _plain_inserts(plain_db, records)
        plain, sealed = AuditLog(plain_db), AuditLog(sealed_db, _sealing(folder, True))
        latencies: dict[str, list[float]] = {"plain": [], "sealed": []}
        spent = {"plain": 0.0, "sealed": 0.0}
        for i in range(records):
            for name, log in (("plain", plain), ("sealed", sealed)):
                began = time.perf_counter()
                log.append(_event(i))
                took = time.perf_counter() - began
                latencies[name].append(took)
                spent[name] += took
        context = multiprocessing.get_context("spawn")
        each = max(1, records // writers)
        with context.Pool(writers) as pool:
            start = time.perf_counter()
            pool.starmap(_append_many, [(sealed_url, str(folder), each, w) for w in range(writers)])
            parallel = time.perf_counter() - start
        checkpoints = sum(1 for r in sealed.scan(Filters(kind=CHECKPOINT)))
        walks = {}
        for name, log in (("plain", plain), ("sealed", sealed)):
            start = time.perf_counter()
            walks[name] = (log.verify(), time.perf_counter() - start)
    p50 = {name: statistics.median(values) * 1000 for name, values in latencies.items()}
    p95 = {name: _p95(values) * 1000 for name, values in latencies.items()}
    result, walked = walks["sealed"]
    return {
        "database": plain_url.split(":", 1)[0],
        "records": records,
        "plain_inserts_per_s": round(records / baseline, 1),
        # Chained, not sealed: the audit as it was before seals.
        "appends_per_s": round(records / spent["plain"], 1),
        "append_vs_plain_insert": round(baseline / spent["plain"], 3),
        "append_p50_ms": round(p50["plain"], 2),
        "append_p95_ms": round(p95["plain"], 2),
        # Sealed, with its checkpoints (each one a record of its own and a line, fsynced).
        "sealed_appends_per_s": round(records / spent["sealed"], 1),
        "sealed_append_p50_ms": round(p50["sealed"], 2),
        "sealed_append_p95_ms": round(p95["sealed"], 2),
        "sealed_vs_unsealed_p50": round(p50["sealed"] / p50["plain"], 3),
        "sealed_vs_unsealed_p95": round(p95["sealed"] / p95["plain"], 3),
        "checkpoint_every": CHECKPOINT_EVERY,
        "checkpoints": checkpoints,  # records of them in the sealed chain, both phases
        "writers": writers,
        "parallel_appends_per_s": round(each * writers / parallel, 1),  # sealed
        "verify_records": result.records,
        "verify_sealed": result.sealed,
        "verify_intact": result.intact and walks["plain"][0].intact,
        "verify_records_per_s": round(result.records / walked, 1),
        "verify_unsealed_records_per_s": round(walks["plain"][0].records / walks["plain"][1], 1),
    }


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))]


def _sealing(folder: Path, create: bool) -> Sealing:
    return open_sealing(folder / "seal.key", create, None, folder / "checkpoints.jsonl",
                        CHECKPOINT_EVERY, 300.0)


def _event(i: int, writer: int = 0) -> Event:
    passages = [Passage(str(uuid.uuid4()), str(uuid.uuid4()), "v" * 64, f"/share/doc-{p}.pdf",
                        f"Passage {p} of answer {i} by {writer}. " + "lorem ipsum " * 85)
                for p in range(5)]
    answer = "An answer sentence [1]. " * 20
    body = {"question": f"question {i}", "answer": answer,
            "retrieved": [{"chunk_id": p.chunk_id, "score": 0.5, "rank": r,
                           "text_sha256": text_hash(p.text)}
                          for r, p in enumerate(passages, 1)],
            "checks": [{"text": "An answer sentence.", "score": 0.81}] * 10}
    return Event("answer", f"user{writer}", body, question=f"question {i}",
                 answer=answer, refused=False, passages=passages)


def _append_many(url: str, folder: str, n: int, writer: int) -> None:
    db = Database(url)
    log = AuditLog(db, _sealing(Path(folder), False))
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
