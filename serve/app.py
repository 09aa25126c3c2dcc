"""The FastAPI app factory: the container comes from outside (the CLI, or a test)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from core.container import Container
from serve import http_errors
from serve.health import readiness
from serve.limits import AnswerGate, RateLimiter
from serve.oidc import OidcVerifier
from serve.routes import admin, chat, openai_compat


def create_app(container: Container) -> FastAPI:
    app = FastAPI(
        title="enclave",
        summary="Private retrieval-augmented answers over your own documents.",
        version="0.1.0",
    )
    app.state.container = container
    serve = container.settings.serve
    app.state.rate = RateLimiter(serve.rate_per_minute)
    app.state.gate = AnswerGate(serve.max_concurrent_answers)
    app.state.oidc = OidcVerifier(serve.oidc) if serve.oidc.enabled else None
    http_errors.install(app)
    app.include_router(chat.router)
    app.include_router(openai_compat.router)
    app.include_router(admin.router)

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        # Uploads to the admin API have their own, larger limit (ENCLAVE_JOBS__MAX_UPLOAD_MB).
        limit = serve.max_body_kb * 1024
        size = request.headers.get("content-length")
        if not request.url.path.startswith("/v1/admin/") and size and size.isdigit() and (
                int(size) > limit):
            return JSONResponse({"error": "too_large",
                                 "detail": f"the request body is over {serve.max_body_kb} KB"},
                                status_code=413)
        return await call_next(request)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is alive (no authentication)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """Store, database, model and broker reachable (no authentication): 200 or 503."""
        checks = readiness(container)
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "unavailable", "checks": checks},
                            status_code=200 if ready else 503)

    return app
