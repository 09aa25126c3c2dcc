"""Sources through the admin API on a real server: an intranet site (a real HTTP server on
loopback) added, synced through the real pipeline, re-synced incrementally, checked,
refused when unreachable, held by one sync at a time, and removed with its documents."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.jobs import DELETED, DONE, ITEM_DONE, UNCHANGED
from core.types import Principal
from tests.serve.conftest import Api, bearer_client


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path, ThreadingHTTPServer]]:
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text(
        "<html><head><title>Intranet</title></head><body><h1>Welcome</h1>"
        "<p>The intranet home of the Lisbon office.</p>"
        '<a href="travel.html">Travel</a> <a href="parking.html">Parking</a></body></html>')
    (root / "travel.html").write_text(
        "<html><body><h1>Travel policy</h1><p>Night trains are booked in second class "
        "sleeper cabins for trips over six hours.</p></body></html>")
    (root / "parking.html").write_text(
        "<html><body><h1>Parking</h1><p>The garage under building C has forty bays for "
        "visitors, booked at the front desk.</p></body></html>")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html", root, server
    server.shutdown()
    server.server_close()


def found(api: Api, query: str, *groups: str) -> set[str]:
    hits = api.container.searcher.search(query, Principal("u", tuple(groups)), k=10)
    return {h.chunk.doc_id for h in hits}


def by_name(api: Api, job_id: str) -> dict[str, str]:
    return {i.source.rsplit("/", 1)[-1]: i.status
            for i in api.container.jobs.items(job_id, None, limit=100)}


def test_an_intranet_site_synced_through_the_admin_api(
    api_factory: Callable[..., Api], site: tuple[str, Path, ThreadingHTTPServer], tmp_path: Path
) -> None:
    url, root, server = site
    api = api_factory(jobs={"allowed_roots": [str(tmp_path / "shares")]})
    employee = bearer_client(api, api.container.users.add("eve", ("sales",), ()))
    reader = api.container.users.add("ida", ("intranet",), ())

    assert employee.get("/v1/admin/sources").status_code == 403
    refused = {
        "no groups": {"name": "intranet", "kind": "web", "location": url},
        "a password": {"name": "intranet", "kind": "web", "location": url,
                       "groups": ["intranet"], "credentials": "hunter2"},
        "outside the roots": {"name": "etc", "kind": "folder", "location": "/etc",
                              "mapping": {"other": ["@public"]}},
        "an unknown kind": {"name": "x", "kind": "ftp", "location": url, "groups": ["g"]},
        "a bad schedule": {"name": "intranet", "kind": "web", "location": url,
                           "groups": ["intranet"], "every": "often"},
        "an unknown option": {"name": "intranet", "kind": "web", "location": url,
                              "groups": ["intranet"], "options": {"follow_offsite": True}},
        "a negative limit": {"name": "intranet", "kind": "web", "location": url,
                             "groups": ["intranet"], "options": {"max_pages": -1}},
        "an extra field": {"name": "intranet", "kind": "web", "location": url,
                           "groups": ["intranet"], "password": "hunter2"},
        "a bad name": {"name": "../etc", "kind": "web", "location": url, "groups": ["g"]},
    }
    for why, body in refused.items():
        r = api.http.post("/v1/admin/sources", json=body)
        assert 400 <= r.status_code < 500 and r.json()["detail"], (why, r.text)
        assert "hunter2" not in r.text

    r = api.http.post("/v1/admin/sources", json={
        "name": "intranet", "kind": "web", "location": url, "groups": ["intranet"],
        "every": "6h", "options": {"max_pages": 50}})
    assert r.status_code == 201, r.text
    assert r.json()["every_s"] == 6 * 3600

    r = api.http.post("/v1/admin/sources/intranet/sync")
    assert r.status_code == 202, r.text
    job = api.container.jobs.get(r.json()["job_id"])
    assert job.status == DONE and job.error is None
    assert by_name(api, job.job_id) == {"index.html": ITEM_DONE, "travel.html": ITEM_DONE,
                                        "parking.html": ITEM_DONE}
    travel = api.container.registry.find_by_source(url.replace("index", "travel"))
    assert travel is not None and travel.groups == ("intranet",)
    assert travel.doc_id in found(api, "night trains sleeper cabins", "intranet")
    assert travel.doc_id not in found(api, "night trains sleeper cabins", "sales")
    shown = api.http.get("/v1/admin/sources/intranet").json()
    assert shown["last_job"]["status"] == DONE and shown["last_job"]["counts"]["done"] == 3

    # Incremental: one page changed, one gone, one as it was.
    (root / "travel.html").write_text(
        "<html><body><h1>Travel policy</h1><p>Night trains are booked in first class "
        "sleeper cabins for trips over eight hours.</p></body></html>")
    (root / "index.html").write_text(
        (root / "index.html").read_text().replace('<a href="parking.html">Parking</a>', ""))
    (root / "parking.html").unlink()
    job = api.container.jobs.get(api.http.post("/v1/admin/sources/intranet/sync").json()["job_id"])
    assert by_name(api, job.job_id) == {"index.html": ITEM_DONE, "travel.html": ITEM_DONE,
                                        "parking.html": DELETED}
    again = api.container.jobs.get(
        api.http.post("/v1/admin/sources/intranet/sync").json()["job_id"])
    assert set(by_name(api, again.job_id).values()) == {UNCHANGED}

    report = api.http.get("/v1/admin/sources/intranet/check").json()
    assert report["documents"] == 2 and report["users"]["ida"] == 2
    assert report["users"]["eve"] == 0

    # Sales may read the intranet too: the next sync changes the groups, embeds nothing.
    r = api.http.patch("/v1/admin/sources/intranet", json={"groups": ["intranet", "sales"]})
    assert r.status_code == 200 and r.json()["groups"] == ["intranet", "sales"], r.text
    assert api.http.patch("/v1/admin/sources/intranet", json={"groups": []}).status_code == 400
    assert api.http.patch("/v1/admin/sources/intranet",
                          json={"kind": "folder"}).status_code in (400, 422)
    job = api.container.jobs.get(api.http.post("/v1/admin/sources/intranet/sync").json()["job_id"])
    assert set(by_name(api, job.job_id).values()) == {ITEM_DONE}
    assert travel.doc_id in found(api, "night trains first class", "sales")
    assert api.container.registry.get(travel.doc_id).active_version == \
        api.container.registry.find_by_source(url.replace("index", "travel")).active_version

    # One sync at a time: a sync still running holds the source.
    holder = api.container.jobs.create("admin", ["source:intranet"], (), True)
    api.container.sources.claim("intranet", holder)
    r = api.http.post("/v1/admin/sources/intranet/sync")
    assert r.status_code == 409 and holder in r.json()["detail"]
    api.container.jobs.cancel(holder)

    # The site down: the job says why, and nothing is deleted.
    server.shutdown()
    server.server_close()
    job = api.container.jobs.get(api.http.post("/v1/admin/sources/intranet/sync").json()["job_id"])
    assert job.error and job.error.startswith("nothing deleted:") and "refused" in job.error
    assert travel.doc_id in found(api, "night trains first class", "intranet")

    r = api.http.delete("/v1/admin/sources/intranet")
    assert r.status_code == 200 and r.json()["documents_deleted"] == 2
    assert not found(api, "night trains first class", "intranet")
    assert api.http.get("/v1/admin/sources/intranet").status_code == 404
    assert bearer_client(api, reader).get("/v1/admin/sources").status_code == 403


def test_hostile_strings_in_every_field_get_4xx_or_a_reason_never_a_500(
    api_factory: Callable[..., Api], tmp_path: Path
) -> None:
    api = api_factory(jobs={"allowed_roots": [str(tmp_path)]},
                      serve={"rate_per_minute": 10_000})
    nasty = ["\x00", "a\x1bb", "\ud800", "x" * 5000, "../../etc", "\u202e"]
    base = {"name": "s", "kind": "web", "location": "http://127.0.0.1:9/", "groups": ["g"]}
    fields = ["name", "location", "username", "credentials", "include", "exclude", "groups",
              "mapping", "options", "every"]
    for field in fields:
        for value in nasty:
            body = dict(base)
            match field:
                case "include" | "exclude" | "groups":
                    body[field] = [value]
                case "mapping":
                    body.update(kind="folder", location=str(tmp_path), mapping={value: [value]})
                case "options":
                    body["options"] = {value: value}
                case _:
                    body[field] = value
            r = api.http.post("/v1/admin/sources", content=_json(body),
                              headers={"content-type": "application/json"})
            assert r.status_code < 500, (field, value, r.text)
            if r.status_code == 201:
                name = r.json()["name"]
                job = api.http.post(f"/v1/admin/sources/{name}/sync")
                assert job.status_code < 500, (field, value, job.text)
                api.http.delete(f"/v1/admin/sources/{name}")
    assert api.http.post("/v1/admin/sources", json=base).status_code == 201
    for value in nasty[:3]:
        for change in ({"include": [value]}, {"username": value}, {"options": {"user_agent": value}}):
            r = api.http.patch("/v1/admin/sources/s", content=_json(change),
                               headers={"content-type": "application/json"})
            assert r.status_code in (400, 422) and r.json()["detail"], (change, r.text)


def _json(body: dict[str, object]) -> bytes:
    import json

    # A lone surrogate goes out as its \\ud800 escape, as a hostile client would send it.
    return json.dumps(body).encode()
