"""Logging for every enclave process: text for people, JSON lines for log shippers.

Privacy: unless ``ENCLAVE_LOG__CONTENT`` is on, a log never holds a question or document
text. enclave's own records pass such text through :func:`content`, which stands in its
length; records of other libraries below WARNING are dropped, because clients log request
bodies at DEBUG (openai, httpx) and parsers log what they read.

Every record carries ``request_id``: the HTTP request's (``X-Request-ID``) in ``serve``,
and the same id in the worker tasks that request caused (workers/app.py carries it in the
task's headers).
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.settings import LogSettings

REQUEST_ID: ContextVar[str | None] = ContextVar("enclave_request_id", default=None)

# Loggers whose INFO records are enclave's own or hold no content (lifecycle, task ids).
_OWN = ("core", "ingest", "retrieval", "serve", "workers", "eval", "enclave", "uvicorn.error",
        "celery")
_content_allowed = False


def content(text: str) -> str:
    """Text to log that may be content: itself only when the operator allowed it."""
    return text if _content_allowed else f"<{len(text)} chars withheld>"


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class _NoForeignContent(logging.Filter):
    """Drops other libraries' records below WARNING: they may quote what they process."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.startswith(_OWN)


def configure(settings: LogSettings, default_level: str = "WARNING") -> None:
    """(Re)configure the root logger; idempotent, so every entry point may call it."""
    global _content_allowed
    _content_allowed = settings.content
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestId())
    if not settings.content:
        handler.addFilter(_NoForeignContent())
    handler.setFormatter(_formatter(settings.format))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_enclave", False):
            root.removeHandler(old)
    handler._enclave = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.level or default_level)


def _formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    return logging.Formatter("%(levelname)s %(name)s: %(message)s")
