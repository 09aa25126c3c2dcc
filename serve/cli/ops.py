"""``enclave db ...`` and ``enclave health ...``: what deployments run around the services.

``db upgrade`` is the one-shot migration step of an upgrade (compose's ``migrate``
service); ``health api`` and ``health worker`` are the containers' health checks.
"""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from serve.cli.common import EXIT_BACKEND, JsonOpt, err, out, run_cli, shared_settings

if TYPE_CHECKING:
    from core.container import Container

db_app = typer.Typer(help="The metadata database's schema.", no_args_is_help=True)
health_app = typer.Typer(help="Health checks for containers and supervisors (exit 0: healthy).",
                         no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the schema to this version's newest revision (idempotent; serialised by a lock)."""
    from core.db import Database
    from core.settings import Settings

    def work() -> tuple[str | None, str]:
        settings = Settings()
        db = Database(settings.resolved_database_url, migrate=True)
        try:
            return db.revisions()
        finally:
            db.close()

    current, head = run_cli(work)
    out.print(f"database schema at revision {current} (newest: {head})")


@db_app.command("status")
def db_status(as_json: JsonOpt = False) -> None:
    """The schema's revision and this version's newest; exit 1 when it is behind."""

    def work() -> tuple[str | None, str]:
        from sqlalchemy import create_engine
        from sqlalchemy.exc import SQLAlchemyError

        from core.db import revisions
        from core.errors import RegistryError
        from core.settings import Settings

        engine = create_engine(Settings().resolved_database_url)
        try:
            return revisions(engine)
        except SQLAlchemyError as exc:
            raise RegistryError(f"cannot open the database: {exc}") from exc
        finally:
            engine.dispose()

    current, head = run_cli(work)
    if as_json:
        out.print_json(data={"current": current, "head": head, "up_to_date": current == head})
    else:
        out.print(f"current {current or 'none'}, newest {head}"
                  + ("" if current == head else ": run `enclave db upgrade`"))
    if current != head:
        raise typer.Exit(EXIT_BACKEND)


def _warm_up(container: Container) -> None:
    """Load the models while the server starts, not in the first asker's request (the
    in-process model took 15-44 s there on a loaded machine); they stay loaded for the
    life of the process. Requests that come first wait for the same load, not a second."""
    import logging
    import time

    log = logging.getLogger("serve.cli.ops")
    started = time.perf_counter()
    try:
        container.embedder.embed(["warm up"])
        answer, llm = container.settings.answer, container.settings.llm
        if answer.mode == "generative" and llm.mode == "llama-cpp":
            container.generator.count_tokens("warm up")
    except Exception:
        log.warning("loading the models at start-up failed; the first request retries",
                    exc_info=True)
        return
    log.info("models loaded in %.1f s", time.perf_counter() - started)


@health_app.command("api")
def health_api(
    url: Annotated[str | None, typer.Option(
        help="Default: http://127.0.0.1:<ENCLAVE_SERVE__PORT>/readyz")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 5.0,
) -> None:
    """Healthy when the API answers /readyz with 200 (store, database, model, broker)."""
    import httpx

    from core.settings import Settings

    target = url or f"http://127.0.0.1:{Settings().serve.port}/readyz"
    try:
        response = httpx.get(target, timeout=timeout)
    except httpx.HTTPError as exc:
        err.print(f"unhealthy: {target}: {exc}")
        raise typer.Exit(EXIT_BACKEND) from exc
    out.print(response.text)
    if response.status_code != 200:
        raise typer.Exit(EXIT_BACKEND)


@health_app.command("worker")
def health_worker(
    max_age: Annotated[float | None, typer.Option(
        help="Seconds since the last beat (default: 4 recovery passes, at least 60).")] = None,
) -> None:
    """Healthy when this host's worker beat recently (it beats on every recovery pass)."""
    from core.settings import Settings
    from workers import health

    settings = Settings()
    age = health.age_s(settings)
    limit = max_age if max_age is not None else health.max_age_s(settings)
    if age is None:
        err.print(f"unhealthy: no worker on {socket.gethostname()} has beaten yet "
                  f"({health.heartbeat_path(settings)})")
        raise typer.Exit(EXIT_BACKEND)
    if age > limit:
        err.print(f"unhealthy: the worker's last beat was {age:.0f} s ago (limit {limit:.0f} s)")
        raise typer.Exit(EXIT_BACKEND)
    out.print(f"healthy: last beat {age:.1f} s ago")


def serve(
    host: Annotated[str | None, typer.Option(help="Default ENCLAVE_SERVE__HOST (127.0.0.1).")]
    = None,
    port: Annotated[int | None, typer.Option(help="Default ENCLAVE_SERVE__PORT (8000).")] = None,
) -> None:
    """Run the HTTP API (every route but /healthz and /readyz needs an API key)."""
    from core.container import Container
    from core.logs import configure as configure_logs
    from serve.http.app import create_app
    from serve.http.server import build_server, raise_open_files_limit

    def start() -> Container:
        # Held open for fast searches, given up while a worker or command writes.
        settings = shared_settings(hold_open="yield")
        configure_logs(settings.log, default_level="INFO")
        container = Container(settings)
        container.database  # noqa: B018 - migrated, or refused when behind (database_migrate)
        container.audit  # noqa: B018 - an unreadable seal key refuses start-up, not an answer
        return container

    container = run_cli(start)
    settings = container.settings
    threading.Thread(target=_warm_up, args=(container,), name="enclave-warm-up",
                     daemon=True).start()
    try:
        raise_open_files_limit()
        server = build_server(create_app(container), settings.serve, host, port)
        try:
            server.run()
        except KeyboardInterrupt:
            pass  # Ctrl-C before uvicorn's own signal handlers are in place: a normal stop
    finally:
        container.close()
