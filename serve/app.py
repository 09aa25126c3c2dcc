"""The FastAPI app factory: the container comes from outside (the CLI, or a test)."""

from __future__ import annotations

from fastapi import FastAPI

from core.container import Container
from serve import http_errors
from serve.routes import admin


def create_app(container: Container) -> FastAPI:
    app = FastAPI(
        title="enclave",
        summary="Private retrieval-augmented answers over your own documents.",
        version="0.1.0",
    )
    app.state.container = container
    http_errors.install(app)
    app.include_router(admin.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
