"""The web pages' "Sign in with your organisation" against an identity provider on loopback.

The provider is a small real HTTP server speaking the authorization code flow with PKCE: it
approves at once, and its token endpoint checks the code verifier against the challenge
before it signs a JWT with a key of the JWKS file enclave trusts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.conftest import free_port
from tests.serve.conftest import Api
from tests.serve.http.test_web import browser, needs_chromium, no_unexpected_errors, page, shot  # noqa: F401

ISSUER, CLIENT = "https://idp.corp.local", "enclave-web"


class Idp:
    """Approves every sign-in as olivia (group finance), checking PKCE and the redirect."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.codes: dict[str, tuple[str, str]] = {}
        self.exchanged = 0
        self.ui_origin = ""
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        app = Starlette(routes=[Route("/authorize", self.authorize),
                                Route("/token", self.token, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        threading.Thread(target=self.server.run, daemon=True).start()
        while not self.server.started:
            time.sleep(0.05)

    def jwks(self, path: Path) -> Path:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        path.write_text(json.dumps({"keys": [{**public, "kid": "idp-1", "alg": "RS256"}]}))
        return path

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if (q.get("response_type"), q.get("client_id"), q.get("code_challenge_method")) != (
                "code", CLIENT, "S256") or q.get("redirect_uri") != f"{self.ui_origin}/ui/":
            return Response("bad authorization request", status_code=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = (q["code_challenge"], q["redirect_uri"])
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}",
                                status_code=302)

    async def token(self, request: Request) -> Response:
        form = await request.form()
        cors = {"Access-Control-Allow-Origin": self.ui_origin}
        challenge, redirect = self.codes.pop(str(form.get("code")), ("", ""))
        verifier = str(form.get("code_verifier", ""))
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
        if (not challenge or digest.decode() != challenge or form.get("redirect_uri") != redirect
                or form.get("grant_type") != "authorization_code" or form.get("client_id") != CLIENT):
            return JSONResponse({"error": "invalid_grant"}, status_code=400, headers=cors)
        self.exchanged += 1
        claims = {"sub": "olivia", "iss": ISSUER, "aud": CLIENT, "exp": int(time.time()) + 300,
                  "groups": ["finance"]}
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "idp-1"})
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": 300},
                            headers=cors)

    def stop(self) -> None:
        self.server.should_exit = True


@pytest.fixture
def sso(
    api_factory: Callable[..., Api], tmp_path: Path, samples: dict[str, Path]
) -> Iterator[tuple[Api, Idp]]:
    idp = Idp()
    api = api_factory(answer={"mode": "extractive"}, serve={"oidc": {
        "jwks_file": idp.jwks(tmp_path / "jwks.json"), "issuer": ISSUER, "audience": CLIENT,
        "authorization_endpoint": f"{idp.base}/authorize", "token_endpoint": f"{idp.base}/token",
        "client_id": CLIENT}})
    idp.ui_origin = api.base  # the one redirect URI and CORS origin the provider accepts
    assert not api.container.ingestor.ingest([samples["finance"]], ["finance"]).failed
    yield api, idp
    idp.stop()


def test_the_pages_advertise_the_login_and_allow_only_its_token_endpoint(sso: tuple[Api, Idp]) -> None:
    api, idp = sso
    assert httpx.get(f"{api.base}/ui/config.json").json()["oidc"] == {
        "authorization_endpoint": f"{idp.base}/authorize", "token_endpoint": f"{idp.base}/token",
        "client_id": CLIENT, "scope": "openid profile"}
    csp = httpx.get(f"{api.base}/ui/").headers["content-security-policy"]
    assert f"connect-src 'self' {idp.base};" in csp and "script-src 'self';" in csp


@needs_chromium
def test_sign_in_with_the_organisation_then_ask_as_its_groups(sso: tuple[Api, Idp], page: Any) -> None:  # noqa: F811
    from playwright.sync_api import expect

    api, idp = sso
    page.goto(f"{api.base}/")
    page.get_by_role("button", name="Sign in with your organisation").click()
    expect(page.locator("#who-text")).to_contain_text("Signed in")
    assert idp.exchanged == 1
    assert "code=" not in page.url and "state=" not in page.url  # the code left the address bar
    question = page.get_by_label("Question")
    question.fill("What is the hotel limit per night?")
    question.press("Enter")
    # olivia's groups come from the token: the finance policy answers, with its citation.
    expect(page.get_by_role("button", name=re.compile(r"^Citation 1")).first).to_be_visible()
    expect(page.locator("#turns")).to_contain_text("180 euros")
    shot(page, "web-oidc-signed-in")
    no_unexpected_errors(page)

    # A forged return (a state this page never issued) signs nobody in.
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{api.base}/ui/?code=stolen&state=forged")
    expect(page.get_by_role("alert")).to_contain_text("does not match a sign-in begun here")
    expect(page.get_by_label("API key")).to_be_visible()
    assert idp.exchanged == 1
