"""Readiness: can this process reach what it needs? Each check says ok or why not."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text

from core.container import Container
from core.errors import one_line
from serve.http.limits import AnswerGate

_TIMEOUT_S = 2.0


def readiness(container: Container) -> dict[str, str]:
    checks: dict[str, Callable[[Container], None]] = {
        "database": _database, "store": _store, "model": _model,
    }
    if container.settings.jobs.mode == "celery":
        checks["broker"] = _broker
    report = {}
    for name, check in checks.items():
        try:
            check(container)
            report[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - a check reports, it never raises
            report[name] = f"unavailable: {one_line(exc)}"
    return report


def _database(c: Container) -> None:
    with c.database.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _store(c: Container) -> None:
    # A new install has no collection yet; creating it is what the first ingest would do.
    # (The first check loads the embedding model for its vector size; serve needs it anyway.)
    c.store.ensure_collection(c.embedder.dim)
    with c.store.session():
        c.store.count()


def _model(c: Container) -> None:
    llm = c.settings.llm
    match llm.mode:
        case "llama-cpp":
            from serve.answering.llm_local import default_model_path

            path = llm.model_path or default_model_path()
            if not path.is_file():
                raise FileNotFoundError(f"no model file at {path}")
        case "openai":
            import httpx

            assert llm.base_url is not None
            headers = {"Authorization": f"Bearer {llm.api_key}"} if llm.api_key else {}
            response = httpx.get(f"{llm.base_url.rstrip('/')}/models", headers=headers,
                                 timeout=_TIMEOUT_S)
            response.raise_for_status()


def _broker(c: Container) -> None:
    from kombu import Connection

    with Connection(c.settings.jobs.broker_url, connect_timeout=_TIMEOUT_S) as conn:
        conn.ensure_connection(max_retries=1, timeout=_TIMEOUT_S)


def queue_depth(broker_url: str, queue: str) -> int:
    from kombu import Connection

    with Connection(broker_url, connect_timeout=_TIMEOUT_S) as conn:
        conn.ensure_connection(max_retries=1, timeout=_TIMEOUT_S)
        with conn.channel() as channel:
            # Passive: counts without creating; Redis' transport sums its priority lists.
            try:
                return int(channel.queue_declare(queue=queue, passive=True).message_count)
            except conn.channel_errors:
                return 0  # no queue yet: nothing was ever sent


def answer_slots(gate: AnswerGate) -> str:
    """Unavailable once every answer slot has been busy for longer than one answer may take."""
    busy_for = gate.saturated_for()
    if busy_for > gate.hold_limit_s:
        return (f"unavailable: all {gate.size} answer slots busy for {busy_for:.0f} s, longer "
                f"than the answer timeout of {gate.hold_limit_s:g} s")
    return "ok"
