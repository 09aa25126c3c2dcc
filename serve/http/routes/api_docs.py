"""The OpenAPI document and, when ``ENCLAVE_SERVE__API_DOCS`` is on, Swagger UI at ``/docs``.

FastAPI's own pages load Swagger UI from a public CDN and start it with an inline script;
an enclave page loads nothing from outside and runs under the same policy as the web pages
(no inline code). So the assets come from a local package (fastapi-offline vendors Swagger
UI 5, which reads OpenAPI 3.1), the start-up script is a file, and every response carries
the web pages' security headers. Off, the API's shape is for callers with a key only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from serve.http.deps import PrincipalDep

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>enclave API</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"""

# validatorUrl null: by default Swagger UI shows a badge fetched from swagger.io.
INIT = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  deepLinking: true,
  validatorUrl: null,
});
"""

ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css")


def install(app: FastAPI, enabled: bool) -> None:
    """``/openapi.json`` (open when enabled, else for any caller with a key) and ``/docs``."""
    router = APIRouter(include_in_schema=False)

    if enabled:
        @router.get("/openapi.json")
        def openapi_open(request: Request) -> JSONResponse:
            return JSONResponse(request.app.openapi())

        _docs_routes(router)
    else:
        @router.get("/openapi.json")
        def openapi_keyed(request: Request, _: PrincipalDep) -> JSONResponse:
            return JSONResponse(request.app.openapi())

    app.include_router(router)


def _docs_routes(router: APIRouter) -> None:
    import fastapi_offline

    static = Path(fastapi_offline.__file__).parent / "static"

    @router.get("/docs")
    def page(request: Request) -> Response:
        return _secured(request, HTMLResponse(PAGE))

    @router.get("/docs/init.js")
    def init(request: Request) -> Response:
        return _secured(request, Response(INIT, media_type="text/javascript"))

    for name in ASSETS:
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        router.add_api_route(f"/docs/{name}", _asset(static / name, kind), methods=["GET"])


def _asset(path: Path, kind: str) -> Callable[[Request], Response]:
    def asset(request: Request) -> Response:
        return _secured(request, FileResponse(path, media_type=kind))

    return asset


def _secured(request: Request, response: Response) -> Response:
    response.headers.update(request.app.state.ui_headers)
    response.headers["Cache-Control"] = "no-cache"
    return response
