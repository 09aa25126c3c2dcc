"""The one mapping from the error tree (core/errors.py) to HTTP: a status and a message.

Never a stack trace: anything outside the tree is logged here and answered 500 with a
request-independent message.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import (
    Abandoned,
    AccessDenied,
    BackendError,
    Busy,
    ConfigError,
    DocumentError,
    EnclaveError,
    InputError,
    LastAdmin,
    NotFound,
    RateLimited,
    SourceError,
    SyncRunning,
    TooLarge,
    Unauthenticated,
    Withheld,
)

log = logging.getLogger(__name__)


def status_of(exc: EnclaveError) -> tuple[int, str]:
    match exc:
        case Abandoned():
            # nginx's "client closed request": nobody is left to read it.
            return 499, "client_closed"
        case Withheld():
            return 500, "withheld"
        case Unauthenticated():
            return 401, "unauthenticated"
        case RateLimited():
            return 429, "rate_limited"
        case NotFound():
            return 404, "not_found"
        case AccessDenied():
            return 403, "forbidden"
        case TooLarge():
            return 413, "too_large"
        case SyncRunning():
            return 409, "sync_running"
        case LastAdmin():
            return 409, "last_admin"
        case InputError() | DocumentError():
            return 400, "invalid_request"
        case Busy():
            return 503, "busy"
        case BackendError():
            return 503, "unavailable"
        case SourceError():
            return 502, "source_unavailable"
        case ConfigError():
            return 500, "misconfigured"
    return 500, "error"


def _body(code: str, detail: str) -> dict[str, str]:
    return {"error": code, "detail": detail}


def install(app: FastAPI) -> None:
    @app.exception_handler(EnclaveError)
    async def enclave_error(_: Request, exc: EnclaveError) -> JSONResponse:
        status, code = status_of(exc)
        if status >= 500:
            log.warning("%s: %s", code, exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return JSONResponse(_body(code, str(exc)), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for error in exc.errors()[:5]:
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
            parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
        return JSONResponse(_body("invalid_request", "; ".join(parts)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(_body("http_error", str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(_body("internal", "internal error; see the server log"),
                            status_code=500)
