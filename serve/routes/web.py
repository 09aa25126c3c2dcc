"""The web front end: static files under ``/ui`` (no build step), ``/`` redirects there.

The pages talk to the JSON API only, with the user's bearer key. Every UI response carries
a strict Content-Security-Policy: scripts, styles and connections to this origin only, no
inline code, no framing.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB_DIR = Path(__file__).resolve().parents[1] / "web"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

router = APIRouter(include_in_schema=False)


class SecureStaticFiles(StaticFiles):
    """Static files with the security headers, and revalidated on each load."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-cache"
        return response


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307, headers=SECURITY_HEADERS)


def install(app: FastAPI) -> None:
    """Mount the pages at ``/ui`` and redirect ``/`` to them."""
    app.include_router(router)
    app.mount("/ui", SecureStaticFiles(directory=WEB_DIR, html=True), name="ui")
