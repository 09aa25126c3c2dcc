"""GET /v1/me through a real server: who the key belongs to, and the pages its roles open."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from serve.http.people_schemas import PAGES
from tests.serve.conftest import Api, bearer_client


def test_me_names_the_caller_with_groups_roles_and_pages(api_factory: Callable[..., Api]) -> None:
    api = api_factory()
    users = api.container.users
    cases = {
        "emma": ((), ("employee",), ["chat"]),
        "aldo": (("legal",), ("auditor",), ["chat", "audit"]),
        "ada": (("finance", "hr"), ("admin",), ["chat", "admin"]),
        "boss": (("finance",), ("auditor", "admin"), ["chat", "audit", "admin"]),
    }
    for user, (groups, roles, pages) in cases.items():
        with bearer_client(api, users.add(user, groups, roles)) as http:
            reply = http.get("/v1/me")
            assert reply.status_code == 200, reply.text
            assert reply.json() == {"user_id": user, "groups": sorted(groups),
                                    "roles": sorted(roles), "pages": pages}
            # Each page the reply offers opens for this caller; the others answer 403.
            for page, route in {"audit": "/v1/audit/records", "admin": "/v1/admin/jobs"}.items():
                assert (http.get(route).status_code == 200) == (page in pages), (user, page)
    assert list(PAGES) == ["chat", "audit", "admin"]


def test_me_refuses_a_missing_or_revoked_key(api_factory: Callable[..., Api]) -> None:
    api = api_factory()
    key = api.container.users.add("leaver", (), ("employee",))
    assert bearer_client(api, key).get("/v1/me").status_code == 200
    api.container.users.revoke("leaver")
    reply = bearer_client(api, key).get("/v1/me")
    assert reply.status_code == 401 and "revoked" in reply.json()["detail"]
    reply = httpx.get(f"{api.base}/v1/me", timeout=30)
    assert reply.status_code == 401 and "Authorization: Bearer" in reply.json()["detail"]
