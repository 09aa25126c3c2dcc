"""OIDC bearer tokens against a JWKS file and a JWKS URL (a local HTTP server), real server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from core.types import Principal
from tests.serve.conftest import Api

ISSUER, AUDIENCE = "https://idp.corp.local", "enclave"


def _keypair() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signing() -> tuple[Any, Any]:
    return _keypair(), _keypair()  # the IdP's key, and an impostor's


@pytest.fixture
def jwks(tmp_path: Path, signing: tuple[Any, Any]) -> Path:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing[0].public_key()))
    path = tmp_path / "jwks" / "keys.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"keys": [{**public, "kid": "idp-1", "use": "sig", "alg": "RS256"}]}))
    return path


def _token(key: Any, **claims: Any) -> str:
    body = {"sub": "carol", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300,
            "groups": ["finance"], **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "idp-1"})


@pytest.fixture
def make_oidc_api(api_factory: Callable[..., Api]) -> Callable[..., Api]:
    return lambda **oidc: api_factory(
        serve={"oidc": {"issuer": ISSUER, "audience": AUDIENCE, **oidc}})


def _get(api: Api, token: str, path: str = "/v1/conversations") -> httpx.Response:
    return httpx.get(api.base + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_tokens_from_the_jwks_file(make_oidc_api: Callable[..., Api], jwks: Path,
                                   signing: tuple[Any, Any]) -> None:
    api = make_oidc_api(jwks_file=jwks)
    idp, impostor = signing
    assert _get(api, _token(idp)).status_code == 200
    assert _get(api, _token(idp), "/v1/admin/jobs").status_code == 403  # an employee
    assert _get(api, _token(idp, roles=["admin", "wizard"]), "/v1/admin/jobs").status_code == 200
    rejected = {
        "expired": _token(idp, exp=int(time.time()) - 60),
        "wrong audience": _token(idp, aud="another-app"),
        "wrong issuer": _token(idp, iss="https://evil.example"),
        "forged": _token(impostor),
        "no exp": jwt.encode({"sub": "x", "iss": ISSUER, "aud": AUDIENCE}, idp, algorithm="RS256",
                             headers={"kid": "idp-1"}),
        "unsigned": jwt.encode({"sub": "x", "iss": ISSUER, "aud": AUDIENCE,
                                "exp": int(time.time()) + 60}, None, algorithm="none"),
    }
    for why, token in rejected.items():
        response = _get(api, token)
        assert response.status_code == 401, why
        assert response.json()["detail"].startswith("invalid token"), why
    # API keys keep working beside tokens.
    assert api.http.get("/v1/admin/jobs").status_code == 200


def test_tokens_from_a_jwks_url_on_the_local_network(
    make_oidc_api: Callable[..., Api], jwks: Path, signing: tuple[Any, Any]
) -> None:
    handler = partial(SimpleHTTPRequestHandler, directory=str(jwks.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        api = make_oidc_api(jwks_url=f"http://127.0.0.1:{server.server_port}/keys.json")
        token = _token(signing[0], sub="dave", groups="finance legal")
        assert _get(api, token).status_code == 200
        verifier = api.server.config.app.state.oidc
        assert verifier.principal(token) == Principal("dave", ("finance", "legal"), ("employee",))
        assert _get(api, _token(signing[1])).status_code == 401
    finally:
        server.shutdown()
