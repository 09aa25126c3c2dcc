"""The FastAPI app factory: the container comes from outside (the CLI, or a test)."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from core.container import Container
from serve.http import errors as http_errors
from serve.http.body_limit import BodyLimit
from serve.http.body_timeout import BodyTimeout
from serve.http.deps import clean_params
from serve.http.health import answer_slots, readiness
from serve.http.limits import AnswerGate, RateLimiter
from serve.http.observe import Observe
from serve.http.oidc import OidcVerifier
from serve.http.routes import (
    admin,
    answers,
    api_docs,
    audit,
    chat,
    console,
    evaluation,
    metrics,
    openai_compat,
    people,
    sources,
    web,
)


def create_app(container: Container) -> FastAPI:
    app = FastAPI(
        dependencies=[Depends(clean_params)],
        title="enclave",
        summary="Private retrieval-augmented answers over your own documents.",
        version="0.1.0",
        # Ours instead (serve/routes/api_docs.py): FastAPI's pages load from a public CDN.
        docs_url=None, redoc_url=None, openapi_url=None,
    )
    app.state.container = container
    serve = container.settings.serve
    app.state.rate = RateLimiter(serve.rate_per_minute)
    app.state.gate = AnswerGate(serve.max_concurrent_answers, serve.answer_timeout_s)
    app.state.oidc = OidcVerifier(serve.oidc) if serve.oidc.enabled else None
    app.state.backlog = metrics.backlog_registry(container)
    http_errors.install(app)
    app.include_router(chat.router)
    app.include_router(people.router)
    app.include_router(people.admin_router)
    app.include_router(console.router)
    app.include_router(answers.router)
    app.include_router(openai_compat.router)
    app.include_router(admin.router)
    app.include_router(sources.router)
    app.include_router(audit.router)
    app.include_router(evaluation.eval_router)
    app.include_router(evaluation.golden_router)
    app.include_router(metrics.router)
    web.install(app, serve.oidc)
    api_docs.install(app, serve.api_docs)

    app.add_middleware(BodyLimit, max_bytes=serve.max_body_kb * 1024,
                       exempt_prefix="/v1/admin/")
    # Outside the body limit, which reads bodies itself; uploads are under it too.
    app.add_middleware(BodyTimeout, timeout_s=serve.body_timeout_s)
    # Added last, so outermost: a refusal by the body limit has a request id and is timed.
    app.add_middleware(Observe)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is alive (no authentication)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """Store, database, model and broker reachable, answer slots not stuck (no
        authentication): 200 or 503."""
        checks = readiness(container)
        checks["answers"] = answer_slots(app.state.gate)
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "unavailable", "checks": checks},
                            status_code=200 if ready else 503)

    return app
