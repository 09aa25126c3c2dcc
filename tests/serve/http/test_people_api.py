"""GET /v1/me through a real server: who the key belongs to, and the pages its roles open."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from core.audit import Filters
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


def _kinds(api: Api, kind: str) -> list[dict[str, object]]:
    records = api.container.audit.records(Filters(kind=kind), 50)
    return [{"actor": r.actor, **r.body} for r in reversed(records)]


def test_an_admin_manages_people_and_every_action_is_recorded(
        api_factory: Callable[..., Api]) -> None:
    api = api_factory()
    http = api.http  # root-admin

    issued = http.post("/v1/admin/users", json={"user_id": " ines@example.com ",
                                                "groups": [" finance "], "roles": []})
    assert issued.status_code == 201, issued.text
    body = issued.json()
    key = body.pop("key")
    assert key.startswith("enc_")
    assert body["user_id"] == "ines@example.com" and body["groups"] == ["finance"]
    assert body["roles"] == ["employee"] and [k["shown"] for k in body["keys"]] == [key[:10]]
    # The key issued works for the API at once, as the user it names.
    me = bearer_client(api, key).get("/v1/me").json()
    assert me == {"user_id": "ines@example.com", "groups": ["finance"],
                  "roles": ["employee"], "pages": ["chat"]}
    second = http.post("/v1/admin/users", json={"user_id": "ines@example.com",
                                                "groups": ["finance"]}).json()["key"]

    changed = http.patch("/v1/admin/users/ines@example.com",
                         json={"groups": ["hr", "finance"], "roles": ["auditor"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["groups"] == ["finance", "hr"] and len(changed.json()["keys"]) == 2
    me = bearer_client(api, key).get("/v1/me").json()  # the next request takes the change
    assert me["groups"] == ["finance", "hr"] and me["pages"] == ["chat", "audit"]

    listed = {u["user_id"]: u for u in http.get("/v1/admin/users").json()["users"]}
    assert set(listed) == {"root-admin", "ines@example.com"}
    first_key = listed["ines@example.com"]["keys"][0]
    assert first_key["shown"] == key[:10] and "key" not in first_key
    gone = http.delete(f"/v1/admin/users/ines@example.com/keys/{first_key['key_id']}")
    assert gone.status_code == 200 and gone.json()["shown"] == key[:10]
    assert bearer_client(api, key).get("/v1/me").status_code == 401
    assert bearer_client(api, second).get("/v1/me").status_code == 200

    revoked = http.post("/v1/admin/users/ines@example.com/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert bearer_client(api, second).get("/v1/me").status_code == 401

    assert [(r["actor"], r["channel"], r["user"]) for r in _kinds(api, "user.key_issued")
            if r["user"] == "ines@example.com"] == [("root-admin", "api", "ines@example.com")] * 2
    [change] = _kinds(api, "user.changed")
    assert change["actor"] == "root-admin" and change["groups_before"] == ["finance"]
    assert change["groups"] == ["finance", "hr"] and change["roles_before"] == ["employee"]
    assert change["roles"] == ["auditor"]
    [key_revoked] = _kinds(api, "user.key_revoked")
    assert key_revoked["key_prefix"] == key[:10]
    [user_revoked] = _kinds(api, "user.revoked")
    assert user_revoked["keys_revoked"] == 1 and user_revoked["actor"] == "root-admin"


def test_the_last_admin_stays_and_bad_requests_are_4xx(api_factory: Callable[..., Api]) -> None:
    api = api_factory()
    http = api.http
    for attempt in (lambda: http.patch("/v1/admin/users/root-admin", json={"roles": ["employee"]}),
                    lambda: http.post("/v1/admin/users/root-admin/revoke"),
                    lambda: http.post("/v1/admin/users", json={"user_id": "root-admin",
                                                               "roles": ["auditor"]})):
        refused = attempt()
        assert refused.status_code == 409, refused.text
        assert refused.json() == {"error": "last_admin", "detail": "root-admin is the last "
                                  "admin: make another user an admin first"}
    assert http.get("/v1/me").json()["roles"] == ["admin"]
    assert _kinds(api, "user.changed") == [] and _kinds(api, "user.revoked") == []

    employee = bearer_client(api, api.container.users.add("emma", (), ("employee",)))
    for method, path in [("GET", "/v1/admin/users"), ("POST", "/v1/admin/users"),
                         ("PATCH", "/v1/admin/users/emma"), ("POST", "/v1/admin/users/emma/revoke"),
                         ("DELETE", "/v1/admin/users/emma/keys/1")]:
        denied = employee.request(method, path, json={"user_id": "x"} if method == "POST" else None)
        assert denied.status_code == 403, (method, path, denied.text)
    for bad, why in [({"user_id": "x", "roles": ["owner"]}, "unknown role"),
                     ({"user_id": "bad\u0007id"}, "control character"),
                     ({"user_id": "x", "groups": ["a\nb"]}, "U+000A"),
                     ({"user_id": "x", "extra": 1}, "extra"),
                     ({"user_id": "lone\ud800"}, "unicode string"),
                     ({"user_id": "nul\u0000"}, "U+0000"),
                     ({"user_id": "x", "groups": ["evil\u202e"]}, "U+202E"),
                     ({"user_id": ""}, "at least 1")]:
        # Sent as JSON escapes (ensure_ascii), as a client would send a lone surrogate.
        reply = http.post("/v1/admin/users", content=json.dumps(bad).encode(),
                          headers={"content-type": "application/json"})
        assert reply.status_code in (400, 422) and why in reply.text, (bad, reply.text)
    assert http.patch("/v1/admin/users/emma", json={}).status_code == 400
    assert http.patch("/v1/admin/users/nobody", json={"roles": ["admin"]}).status_code == 404
    assert http.delete("/v1/admin/users/emma/keys/999999").status_code == 404
    assert http.delete("/v1/admin/users/emma/keys/x").status_code == 422
