"""What every ``enclave`` command shares: consoles, options, exit codes, error mapping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console

import core  # noqa: F401  - switches telemetry off before any library loads
from core.errors import BackendError, ConfigError, EnclaveError, InputError
from core.logs import configure as configure_logs
from core.names import clean_user_id, validate_groups
from core.types import Principal

if TYPE_CHECKING:
    from core.container import Container
    from core.settings import Settings

EXIT_OK, EXIT_BACKEND, EXIT_USAGE, EXIT_SOME_FAILED = 0, 1, 2, 3

out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

T = TypeVar("T")

GroupOpt = Annotated[
    list[str] | None,
    typer.Option("--group", "-g", help="Access group (repeatable). None: public."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def cli_principal(user: str, groups: list[str] | None) -> Principal:
    """Who a command asks as: the id and groups normalised as the store keeps them."""
    return Principal(clean_user_id(user), validate_groups(groups or ()))


@contextmanager
def container_scope(settings: Settings | None = None) -> Iterator[Container]:
    # Imported here, not at the top: `enclave --help` and the commands that open no
    # container (keygen, health, bench) then load neither SQLAlchemy nor pydantic-settings.
    from core.settings import Settings
    from serve.cli.container import CliContainer

    settings = settings or Settings()
    configure_logs(settings.log)
    container = CliContainer(settings)
    try:
        yield container
    finally:
        container.close()


def run_cli(fn: Callable[[], T]) -> T:
    """Map the error tree to exit codes and one-line messages; never a stack trace."""
    try:
        return fn()
    except InputError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(EXIT_USAGE) from exc
    except ConfigError as exc:
        err.print(f"configuration error: {exc}")
        raise typer.Exit(EXIT_USAGE) from exc
    except BackendError as exc:
        err.print(f"unavailable: {exc}")
        raise typer.Exit(EXIT_BACKEND) from exc
    except EnclaveError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(EXIT_BACKEND) from exc


def progress(enabled: bool) -> Any:
    if not enabled:
        return NoProgress()
    from rich.progress import (
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        SpinnerColumn(), TextColumn("{task.description:<40}"), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err, transient=True,
    )


class NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# How long a yielding process (serve) waits for the embedded store by default: a search
# that comes while a worker writes waits for that document's writes, and an error would
# be worse than the wait (README, "Search latency, measured").
YIELD_LOCK_WAIT_S = 30.0


def shared_settings(hold_open: bool | Literal["yield"] = False) -> Settings:
    """Settings for a process beside others: the embedded store is shared, opened per
    operation or (``"yield"``, serve) kept until another process asks for it, unless the
    operator says otherwise (ENCLAVE_QDRANT__HOLD_OPEN, ENCLAVE_QDRANT__LOCK_WAIT_S)."""
    from core.settings import Settings

    settings = Settings()
    q = settings.qdrant
    if "hold_open" not in q.model_fields_set:
        q.hold_open = hold_open
    if q.hold_open == "yield" and "lock_wait_s" not in q.model_fields_set:
        q.lock_wait_s = YIELD_LOCK_WAIT_S
    return settings


def print_figures(result: dict[str, Any], as_json: bool) -> None:
    """A benchmark's figures: JSON, or one aligned line per figure."""
    if as_json:
        out.print_json(data=result)
        return
    for key, value in result.items():
        shown = f"{value:.3f}" if isinstance(value, float) else value
        out.print(f"{key:<28} {shown}")
