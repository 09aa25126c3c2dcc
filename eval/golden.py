"""``enclave eval golden``: the owner's golden set, asked once per configuration.

A configuration is a name and an env file of ``ENCLAVE_*`` settings laid over this
process's own (``--config extractive=extractive.env``); with none, the settings as they
are. Every question is asked through the same :class:`AnswerService` as the chat route
(checked, answered, verified, recorded on the audit trail with channel ``eval``), as
the question's user or groups. Each configuration's run is stored (``core.eval_runs``)
with its figures and every question's outcome, so a later run can be compared with it.

A configuration that cannot run (settings that cannot be used, a model server that
cannot be reached, every question failing) fails alone with its reason; the others run.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.container import Container
from core.errors import ConfigError, EnclaveError, InputError, one_line
from core.eval_runs import EvalRun, RunBook
from core.golden import GoldenQuestion
from core.settings import Settings
from core.types import Principal
from eval.golden_score import Asked, figures, score_question

_PREFIX = "ENCLAVE_"


@dataclass(frozen=True, slots=True)
class Config:
    name: str
    overrides: Mapping[str, str]  # ENCLAVE_* variables of its env file
    source: str  # where they came from, for the record


def parse_config(text: str) -> Config:
    """``NAME=ENVFILE``, or ``NAME`` alone for this process's settings as they are."""
    name, _, path = text.partition("=")
    name = name.strip()
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").replace(
            ".", "").isalnum():
        raise InputError(f"--config {text!r}: NAME=ENVFILE, NAME of letters, digits, '-', "
                         "'_' or '.' (up to 64)")
    if not path:
        return Config(name, {}, "(this process's settings)")
    return Config(name, read_env_file(Path(path)), path)


def read_env_file(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values

    if not path.is_file():
        raise InputError(f"no env file {path}")
    values = dotenv_values(path)
    unknown = [k for k in values if not k.startswith(_PREFIX)]
    if unknown:
        raise InputError(f"{path}: {unknown[0]} is not an enclave setting (ENCLAVE_...)")
    return {k: v or "" for k, v in values.items()}


def settings_for(config: Config, base: Settings) -> Settings:
    """``base`` with the configuration's variables laid over it (nested with ``__``)."""
    from pydantic import ValidationError

    # Only what was set: a default left alone stays a default (base_url implies openai).
    merged = base.model_dump(exclude_unset=True)
    for key, value in config.overrides.items():
        path = key[len(_PREFIX):].lower().split("__")
        node = merged
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"configuration {config.name}: {key} names no setting")
        node[path[-1]] = _value(value)
    try:
        return Settings(**merged)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(f"configuration {config.name}: {problems}") from exc


def _value(text: str) -> Any:
    # Lists and objects are JSON in env files, as pydantic-settings reads them.
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def described(settings: Settings) -> dict[str, Any]:
    """What a run ran with, without secrets."""
    llm = settings.llm
    return {"answer": settings.answer.model_dump(mode="json"),
            "llm": {"mode": llm.mode, "model": llm.model, "base_url": llm.base_url,
                    "model_path": str(llm.model_path) if llm.model_path else None,
                    "max_tokens": llm.max_tokens, "temperature": llm.temperature,
                    "context_tokens": llm.context_tokens},
            "search": settings.search.model_dump(mode="json"),
            "embedding": settings.embedding.model_dump(mode="json")}


def preflight(settings: Settings) -> None:
    """A model server that cannot be reached fails its configuration before any question."""
    if settings.answer.mode != "generative" or settings.llm.mode != "openai":
        return
    import httpx

    url = f"{(settings.llm.base_url or '').rstrip('/')}/models"
    headers = {"Authorization": f"Bearer {settings.llm.api_key}"} if settings.llm.api_key else {}
    try:
        httpx.get(url, headers=headers, timeout=min(settings.llm.timeout_s, 10.0))
    except httpx.HTTPError as exc:
        raise ConfigError(f"the model server at {settings.llm.base_url} cannot be reached: "
                          f"{one_line(exc)}") from exc


class Askers:
    """Who asks each question: a known user as they are today, else the groups given."""

    def __init__(self, known: Mapping[str, Principal]) -> None:
        self.known = known

    def of(self, q: GoldenQuestion) -> Principal:
        if q.user and q.user in self.known:
            return self.known[q.user]
        return Principal(q.user or "golden", q.groups)


def ask_all(container: Container, questions: Sequence[GoldenQuestion], askers: Askers,
            tick: Callable[[], None] | None = None) -> list[Asked]:
    service = container.answer_service
    asked = []
    for q in questions:
        principal = askers.of(q)
        started = time.perf_counter()
        try:
            reply = service.answer(principal, service.prepare(principal, q.question,
                                                              channel="eval"))
            asked.append(Asked(q, reply.answer, time.perf_counter() - started, reply.audit_id))
        except EnclaveError as exc:
            asked.append(Asked(q, None, time.perf_counter() - started,
                               error=f"{type(exc).__name__}: {one_line(exc)}"))
        if tick is not None:
            tick()
    return asked


def run_golden(
    home: Container,
    questions: Sequence[GoldenQuestion],
    golden: str,
    golden_sha256: str,
    configs: Sequence[Config],
    created_by: str,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> list[EvalRun]:
    """Ask ``questions`` once per configuration; every run stored in ``home``'s database."""
    book = RunBook(home.database)
    batch = str(uuid.uuid4())
    askers = Askers({u.user_id: u.principal for u in home.users.users() if not u.revoked})
    runs = []
    for config in configs:
        run_id = None
        try:
            settings = settings_for(config, home.settings)
            run_id = book.start(batch, golden, golden_sha256, config.name,
                                {"env": config.source, **described(settings)}, created_by)
            _run_one(home, book, run_id, config, settings, questions, askers, on_progress)
        except EnclaveError as exc:
            if run_id is None:
                run_id = book.start(batch, golden, golden_sha256, config.name,
                                    {"env": config.source}, created_by)
            book.fail(run_id, one_line(exc))
        runs.append(book.get(run_id))
    return runs


def _run_one(home: Container, book: RunBook, run_id: str, config: Config, settings: Settings,
             questions: Sequence[GoldenQuestion], askers: Askers,
             on_progress: Callable[[str, int, int], None] | None) -> None:
    preflight(settings)
    same_embedder = settings.embedding == home.settings.embedding
    build: dict[str, Any] = {"embedder": home.embedder} if same_embedder else {}
    container = Container(settings, **build)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(config.name, done, len(questions))

    started = time.perf_counter()
    try:
        asked = ask_all(container, questions, askers, tick)
    finally:
        container.close()
    seconds = time.perf_counter() - started
    failed = [a for a in asked if a.answer is None]
    if len(failed) == len(asked):
        raise ConfigError(f"every question failed; the first: {failed[0].error}")
    similarity = _similarity(home)
    rows = [score_question(a, similarity) for a in asked]
    book.finish(run_id, {**figures(rows), "seconds": round(seconds, 1)}, rows)


def _similarity(home: Container) -> Callable[[str, str], float]:
    def similarity(a: str, b: str) -> float:
        import numpy as np

        from eval.golden_score import normalise

        if not normalise(a) or not normalise(b):
            return 0.0
        va, vb = home.embedder.embed([a, b])
        return float(np.dot(va, vb) / ((np.linalg.norm(va) * np.linalg.norm(vb)) or 1.0))

    return similarity
