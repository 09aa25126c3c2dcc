"""The admin API on a real HTTP server (uvicorn), jobs run inline on the real pipeline.

Callers authenticate with API keys; admin routes need the admin role.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from core.types import Principal
from tests.conftest import ENCLAVE, free_port, wait_for_http
from tests.serve.conftest import Api
from tests.workers.conftest import write_texts


@pytest.fixture
def make_api(api_factory: Callable[..., Api]) -> Callable[..., Api]:
    return lambda host="127.0.0.1", **jobs: api_factory(host, jobs=jobs)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "share"
    write_texts(folder, 3)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 nothing here")
    return folder


def test_submit_watch_and_delete(make_api: Callable[..., Api], root: Path) -> None:
    api = make_api(allowed_roots=[root])
    response = api.http.post("/v1/admin/jobs", json={"paths": [str(root)], "groups": ["hr"]})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "done" and job["counts"]["done"] == 3 and job["total"] == 4

    detail = api.http.get(f"/v1/admin/jobs/{job['job_id']}").json()
    failed = [i for i in detail["items"] if i["status"] == "failed"]
    assert [Path(i["source"]).name for i in failed] == ["broken.pdf"]
    assert failed[0]["reason"].startswith("corrupt")
    only_failed = api.http.get(f"/v1/admin/jobs/{job['job_id']}", params={"items": "failed"})
    assert len(only_failed.json()["items"]) == 1
    listed = api.http.get("/v1/admin/jobs").json()["jobs"]
    assert [j["job_id"] for j in listed] == [job["job_id"]]

    assert api.http.post(f"/v1/admin/jobs/{job['job_id']}/cancel").json()["status"] == "done"
    (root / "broken.pdf").write_text("Now a plain text note about the juniper archive.")
    (root / "broken.pdf").rename(root / "fixed.txt")
    retried = api.http.post(f"/v1/admin/jobs/{job['job_id']}/retry").json()
    assert retried["counts"]["failed"] == 1  # the file it named is gone: fails again, alone
    assert retried["counts"]["done"] == 3

    doc_id = next(i["doc_id"] for i in detail["items"] if i["status"] == "done")
    deleted = api.http.delete(f"/v1/admin/documents/{doc_id}")
    assert deleted.status_code == 200 and deleted.json()["doc_id"] == doc_id
    gone = api.http.delete(f"/v1/admin/documents/{doc_id}")
    assert gone.status_code == 404 and gone.json()["error"] == "not_found"
    assert api.container.ingestor.check() == []


@pytest.mark.parametrize(
    ("paths", "status", "says"),
    [
        (["{outside}"], 403, "outside the folders"),
        (["{root}/../outside"], 403, "outside the folders"),
        (["{root}/link-out"], 403, "outside the folders"),
        (["{root}/link-out/secret-000.txt"], 403, "outside the folders"),
        (["{root}/link-out/missing"], 403, "outside the folders"),
        (["{outside}/missing"], 403, "outside the folders"),
        (["/no/such/folder"], 403, "outside the folders"),
        (["{root}/missing"], 404, "no such file"),
        (["relative/path"], 400, "absolute path"),
        # Refused by the request schema or, past it, by the job runner: never a 500.
        (["{root}/a\x00b"], 400, "NUL byte|U+0000"),
        (["/etc\x00/passwd"], 400, "NUL byte|U+0000"),
        ([], 400, "at least 1"),
    ],
)
def test_paths_are_confined_to_the_allowed_roots(
    make_api: Callable[..., Api], root: Path, tmp_path: Path, paths: list[str], status: int,
    says: str,
) -> None:
    outside = tmp_path / "outside"
    write_texts(outside, 1, prefix="secret")
    (root / "link-out").symlink_to(outside)
    api = make_api(allowed_roots=[root])
    named = [p.format(root=root, outside=outside) for p in paths]
    response = api.http.post("/v1/admin/jobs", json={"paths": named})
    assert response.status_code == status, response.text
    assert any(s in response.json()["detail"] for s in says.split("|"))
    assert api.container.jobs.jobs() == []


def test_outside_the_roots_one_answer_whether_or_not_the_path_exists(
    make_api: Callable[..., Api], root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    write_texts(outside, 1, prefix="secret")
    (root / "link-out").symlink_to(outside)
    api = make_api(allowed_roots=[root])
    answers = set()
    for path in (outside / "secret-000.txt", outside / "nothing-here.txt",
                 root / "link-out" / "secret-000.txt", root / "link-out" / "nothing-here.txt",
                 root / ".." / "outside" / "nothing-here.txt"):
        response = api.http.post("/v1/admin/jobs", json={"paths": [str(path)]})
        answers.add((response.status_code, response.json()["detail"].replace(str(path), "P")))
    assert answers == {(403, "P: outside the folders jobs may read (ENCLAVE_JOBS__ALLOWED_ROOTS)")}
    assert api.container.jobs.jobs() == []


def test_a_link_out_of_a_root_is_one_skipped_item_that_names_nothing_outside(
    make_api: Callable[..., Api], root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = tmp_path / "elsewhere"
    write_texts(outside, 5, prefix="private")
    (root / "to-elsewhere").symlink_to(outside)
    # One to nothing outside is skipped alike: "dangling" would tell what is not there.
    (root / "to-nowhere").symlink_to(tmp_path / "missing")
    api = make_api(allowed_roots=[root])
    with caplog.at_level(logging.INFO):
        job = api.http.post("/v1/admin/jobs", json={"paths": [str(root)]}).json()
        detail = api.http.get(f"/v1/admin/jobs/{job['job_id']}")
        retried = api.http.post(f"/v1/admin/jobs/{job['job_id']}/retry")
        again = api.http.get(f"/v1/admin/jobs/{job['job_id']}")
    assert job["total"] == 6 and job["counts"]["done"] == 3  # 3 texts, broken.pdf, 2 links
    skipped = [i for i in detail.json()["items"] if (i["reason"] or "").startswith("skip")]
    assert sorted((i["source"], i["reason"]) for i in skipped) == [
        (str(root / "to-elsewhere"), "skipped: a link that leads outside the allowed folders"),
        (str(root / "to-nowhere"), "skipped: a link that leads outside the allowed folders")]
    assert retried.status_code == 200 and again.json()["total"] == 6
    said = " ".join([detail.text, retried.text, again.text, caplog.text])
    assert str(outside) not in said and "private-" not in said and "missing" not in said
    assert api.container.registry.totals()["documents"] == 3


def test_bad_requests_get_a_4xx_with_a_message(make_api: Callable[..., Api], root: Path) -> None:
    api = make_api(allowed_roots=[root])
    cases = [
        api.http.post("/v1/admin/jobs", json={"paths": [str(root)], "groups": ["a b"]}),
        api.http.post("/v1/admin/jobs", json={"paths": [str(root)], "owner": "mallory"}),
        api.http.post("/v1/admin/jobs", content=b"{not json", headers={"content-type": "application/json"}),
        api.http.post("/v1/admin/jobs", content=b"paths=/", headers={"content-type": "text/plain"}),
        api.http.get("/v1/admin/jobs/no-such-job"),
        api.http.get("/v1/admin/jobs", params={"limit": 0}),
        api.http.get("/v1/admin/jobs/x", params={"items": "everything"}),
    ]
    for response in cases:
        assert 400 <= response.status_code < 500, response.text
        body = response.json()
        assert body["detail"] and "Traceback" not in response.text


def test_no_roots_configured_means_uploads_only(make_api: Callable[..., Api], root: Path) -> None:
    api = make_api()
    refused = api.http.post("/v1/admin/jobs", json={"paths": [str(root)]})
    assert refused.status_code == 403 and "ALLOWED_ROOTS" in refused.json()["detail"]

    files = [
        ("files", ("policy.txt", b"Travel policy: the kestrel fund pays for trains.", "text/plain")),
        ("files", ("../../etc/evil.txt", b"Evil twin of the policy about the yarrow fund.", "text/plain")),
    ]
    response = api.http.post("/v1/admin/jobs", files=files, data={"groups": ["hr"]})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["counts"]["done"] == 2 and job["groups"] == ["hr"]
    saved = sorted(p.name for p in Path(job["sources"][0]).iterdir())
    assert saved == ["evil.txt", "policy.txt"]  # no folders of the client's naming
    upload_root = api.container.settings.resolved_upload_dir
    assert Path(job["sources"][0]).parent == upload_root
    hits = api.container.searcher.search("kestrel fund trains", Principal("bob", ("hr",)))
    assert hits and hits[0].chunk.meta["source"].endswith("policy.txt")
    assert hits[0].chunk.display == "policy.txt"  # not the upload folder's server path
    info = api.container.registry.get(hits[0].chunk.doc_id)
    assert info is not None and info.display_name == "policy.txt"


def test_an_oversized_upload_is_refused_and_not_kept(make_api: Callable[..., Api]) -> None:
    api = make_api(max_upload_mb=0.01)
    big = b"word " * 10_000
    response = api.http.post("/v1/admin/jobs", files=[("files", ("big.txt", big, "text/plain"))])
    assert response.status_code == 413 and "upload limit" in response.json()["detail"]
    upload_root = api.container.settings.resolved_upload_dir
    assert not upload_root.exists() or not any(upload_root.iterdir())


def test_every_route_needs_a_key_and_admin_routes_the_admin_role(
    make_api: Callable[..., Api], root: Path
) -> None:
    api = make_api(allowed_roots=[root])
    employee = api.container.users.add("erin", ("hr",), ("employee",))
    auditor = api.container.users.add("audrey", (), ("auditor",))
    routes = [("GET", "/v1/admin/jobs"), ("GET", "/v1/admin/jobs/x"),
              ("POST", "/v1/admin/jobs"), ("POST", "/v1/admin/jobs/x/cancel"),
              ("POST", "/v1/admin/jobs/x/retry"), ("DELETE", "/v1/admin/documents/x")]
    for method, path in routes:
        none = httpx.request(method, api.base + path, json={"paths": [str(root)]})
        assert none.status_code == 401 and none.headers["www-authenticate"] == "Bearer"
        wrong = httpx.request(method, api.base + path, headers={"Authorization": "Bearer enc_nope"})
        assert wrong.status_code == 401 and "unknown or revoked" in wrong.json()["detail"]
        for key in (employee, auditor):
            denied = httpx.request(method, api.base + path, json={"paths": [str(root)]},
                                   headers={"Authorization": f"Bearer {key}"})
            assert denied.status_code == 403, (method, path, denied.text)
            assert "needs the admin role" in denied.json()["detail"]
    assert api.container.jobs.jobs() == []

    api.container.users.add("second-admin", (), ("admin",))  # the last admin stays
    api.container.users.revoke("root-admin")
    assert api.http.get("/v1/admin/jobs").status_code == 401
    assert httpx.get(api.base + "/healthz").status_code == 200


def test_readiness_names_what_is_unreachable(make_api: Callable[..., Api]) -> None:
    api = make_api()
    ready = httpx.get(api.base + "/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready",
                            "checks": {"database": "ok", "store": "ok", "model": "ok",
                                       "answers": "ok"}}

    api.container.settings.jobs.mode = "celery"
    api.container.settings.jobs.broker_url = "redis://127.0.0.1:9/0"  # nothing listens
    down = httpx.get(api.base + "/readyz", timeout=30)
    assert down.status_code == 503 and down.json()["status"] == "unavailable"
    assert down.json()["checks"]["broker"].startswith("unavailable")
    assert down.json()["checks"]["store"] == "ok"


def test_enclave_serve_runs_the_api(cli_env: dict[str, str], root: Path) -> None:
    import subprocess

    port = free_port()
    env = {**cli_env, "ENCLAVE_JOBS__MODE": "inline",
           "ENCLAVE_JOBS__ALLOWED_ROOTS": f'["{root}"]'}
    added = subprocess.run([str(ENCLAVE), "users", "add", "ops", "--role", "admin"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip().splitlines()[-1]  # the key is the last line
    assert key.startswith("enc_")
    proc = subprocess.Popen([str(ENCLAVE), "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", proc, 60)
        auth = {"Authorization": f"Bearer {key}"}
        response = httpx.post(f"{base}/v1/admin/jobs", json={"paths": [str(root)]}, timeout=120,
                              headers=auth)
        assert response.status_code == 202 and response.json()["counts"]["done"] == 3
        assert response.json()["owner"] == "ops"
        listed = httpx.get(f"{base}/v1/admin/jobs", timeout=10, headers=auth).json()
        assert listed["jobs"][0]["status"] == "done"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
