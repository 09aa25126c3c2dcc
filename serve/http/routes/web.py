"""The web front end: static files under ``/ui`` (no build step), ``/`` redirects there.

The pages talk to the JSON API only, with the user's bearer key. Every UI response carries
a strict Content-Security-Policy: scripts, styles and connections to this origin only, no
inline code, no framing (but for the evaluation report's frame, below).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Scope

from core.settings import OidcSettings

WEB_DIR = Path(__file__).resolve().parents[1] / "web"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


# The one page that may be framed, by the admin page: the frame evaluation reports are shown
# in (evaluation.js). A report is inline <style> and inline <svg> (style attributes), which the
# pages' policy forbids, and a srcdoc frame inherits its parent's policy; so the report goes,
# by postMessage, to this page's sandboxed srcdoc frame and inherits this policy instead: inline
# styles, and still no inline script, no connection, nothing fetched from anywhere.
REPORT_FRAME = "report-frame.html"
REPORT_FRAME_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self' "
                                "'unsafe-inline'; img-src data:; base-uri 'none'; "
                                "form-action 'none'; frame-ancestors 'self'"),
    "X-Frame-Options": "SAMEORIGIN",
}


def security_headers(settings: OidcSettings) -> dict[str, str]:
    """The headers, with the IdP's token endpoint allowed when the pages sign in through it."""
    if not settings.login_enabled or settings.token_endpoint is None:
        return SECURITY_HEADERS
    parts = urlsplit(settings.token_endpoint)
    origin = f"{parts.scheme}://{parts.netloc}"
    return {**SECURITY_HEADERS,
            "Content-Security-Policy": CSP.replace("connect-src 'self'", f"connect-src 'self' {origin}")}

router = APIRouter(include_in_schema=False)


class SecureStaticFiles(StaticFiles):
    """Static files with the security headers, and revalidated on each load."""

    def __init__(self, *, headers: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.headers = headers

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(REPORT_FRAME_HEADERS if path == REPORT_FRAME else self.headers)
        response.headers["Cache-Control"] = "no-cache"
        return response


@router.get("/")
def home(request: Request) -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307, headers=request.app.state.ui_headers)


@router.get("/ui/config.json")
def config(request: Request) -> dict[str, Any]:
    """How the pages may sign in (no secrets: a public client's id and the IdP's endpoints)."""
    oidc: OidcSettings = request.app.state.container.settings.serve.oidc
    login = None
    if oidc.login_enabled:
        login = {"authorization_endpoint": oidc.authorization_endpoint,
                 "token_endpoint": oidc.token_endpoint, "client_id": oidc.client_id,
                 "scope": oidc.scope}
    return {"oidc": login}


def install(app: FastAPI, oidc: OidcSettings) -> None:
    """Mount the pages at ``/ui`` and redirect ``/`` to them."""
    app.state.ui_headers = security_headers(oidc)
    app.include_router(router)
    static: ASGIApp = SecureStaticFiles(headers=app.state.ui_headers, directory=WEB_DIR, html=True)
    app.mount("/ui", static, name="ui")
