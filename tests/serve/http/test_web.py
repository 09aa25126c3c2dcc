"""The web front end (/ui) in a real browser: Debian's Chromium driven by Playwright.

One server for the module: extractive answers (no model, verbatim sentences, real
citations) over the sample documents, and inline jobs confined to one folder. Each test has
its own browser context, so its own sessionStorage (its own sign-in). A screenshot per
scenario goes to docs/screenshots/, where the guides show it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.audit import Filters
from core.container import Container
from core.ports import Embedder
from core.settings import Settings
from serve.http.routes.web import CSP, WEB_DIR
from serve.http.routes.web import security_headers as web_headers
from tests.serve.conftest import Api

CHROMIUM = Path("/usr/bin/chromium")
# The docs show these: each run of the browser tests keeps them current.
SHOTS = Path(__file__).parents[3] / "docs" / "screenshots"
QUESTION = "How many days of paid leave do employees get?"
TIMEOUT_MS = 30_000

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt-get install chromium) for the browser tests")


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def share(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder the admin may ingest: two notes and one corrupt PDF."""
    folder = tmp_path_factory.mktemp("share")
    (folder / "juniper.md").write_text(
        "# Juniper archive\n\nThe juniper archive holds the 2019 board minutes.\n", "utf-8")
    (folder / "lanterns.txt").write_text("Lanterns are checked every Friday by facilities.\n",
                                         "utf-8")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 broken")
    return folder


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, real_embedder: Embedder,
        samples: dict[str, Path], share: Path) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("web")
    settings = Settings(data_dir=root / "data", answer={"mode": "extractive"},
                        jobs={"mode": "inline", "allowed_roots": [share]},
                        qdrant={"hold_open": False})
    container = Container(settings, embedder=real_embedder)
    assert not container.ingestor.ingest([samples["public"]]).failed
    assert not container.ingestor.ingest([samples["finance"]], ["finance"]).failed
    server = Api(container)
    yield server
    server.stop()
    container.close()


@pytest.fixture(scope="module")
def docs_api(tmp_path_factory: pytest.TempPathFactory, real_embedder: Embedder) -> Iterator[Api]:
    """A server with ENCLAVE_SERVE__API_DOCS on (and no documents)."""
    root = tmp_path_factory.mktemp("docs")
    settings = Settings(data_dir=root / "data", serve={"api_docs": True},
                        jobs={"mode": "inline"}, qdrant={"hold_open": False})
    container = Container(settings, embedder=real_embedder)
    server = Api(container)
    yield server
    server.stop()
    container.close()


@pytest.fixture(scope="module")
def keys(api: Api) -> dict[str, str]:
    users = api.container.users
    return {"emma": users.add("emma", (), ("employee",)),
            "aldo": users.add("aldo", (), ("auditor",)),
            "boss": users.add("boss", ("finance",), ("auditor", "admin")),
            "admin": api.admin_key}


@pytest.fixture(scope="module")
def expected(api: Api, keys: dict[str, str]) -> dict[str, Any]:
    """The JSON API's answer to the question, for comparison with what the page shows."""
    reply = httpx.post(f"{api.base}/v1/chat", json={"question": QUESTION}, timeout=120,
                       headers={"Authorization": f"Bearer {keys['emma']}"})
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    assert not body["refused"] and body["citations"], body
    return body


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium for the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh context; console errors (CSP violations among them) fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.console_errors = errors
    yield tab
    context.close()


def no_unexpected_errors(page: Any, also: str = "") -> None:
    # The browser logs a refused request (a wrong key's 401, a missing role's 403) as a failed
    # resource; nothing else may be logged (a CSP violation, a script error, a 404) but what a
    # test expects (`also`: a pattern).
    allowed = r"status of 40[13]\b" + (f"|{also}" if also else "")
    real = [e for e in page.console_errors if not re.search(allowed, e)]
    assert not real, real


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def own_admin(api: Api, name: str) -> str:
    """A key of an admin of the test's own: each key has its own rate limit (60 a minute),
    which the Admin page's reads and polls of tests one after another would share."""
    return api.container.users.add(name, (), ("admin",))


def sign_in(page: Any, api: Api, key: str) -> None:
    page.goto(f"{api.base}/")  # redirected to /ui/
    page.get_by_label("API key").fill(key)
    page.get_by_label("API key").press("Enter")  # the keyboard submits


UNNAMED = re.compile(r"^\s*- (button|textbox|searchbox|combobox|checkbox|link|tab)\s*(:.*)?$")


def assert_all_named(page: Any) -> None:
    """Every visible control in the accessibility tree has an accessible name."""
    tree = page.locator("body").aria_snapshot()
    unnamed = [line for line in tree.splitlines() if UNNAMED.match(line)]
    assert not unnamed, f"controls without a name:\n{tree}"


def ask(page: Any, question: str) -> Any:
    from playwright.sync_api import expect

    page.get_by_label("Question").fill(question)
    page.get_by_role("button", name="Ask").click()
    answer = page.locator("#turns li.turn").last.locator(".answer")
    expect(answer).not_to_have_class(re.compile("streaming"), timeout=120_000)
    return answer


# -- plain HTTP ----------------------------------------------------------------------------------


def test_pages_are_served_with_a_strict_policy(api: Api) -> None:
    with httpx.Client(base_url=api.base, timeout=30) as http:
        home = http.get("/")
        assert home.status_code in (302, 303, 307) and home.headers["location"] == "/ui/"
        page = http.get("/ui/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CSP
        assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP
        assert page.headers["x-content-type-options"] == "nosniff"
        for name in ("app.js", "api.js", "chat.js", "audit.js", "admin.js", "dom.js", "app.css"):
            asset = http.get(f"/ui/{name}")
            assert asset.status_code == 200, name
            kind = "text/css" if name.endswith(".css") else "javascript"
            assert kind in asset.headers["content-type"], (name, asset.headers["content-type"])
            assert asset.headers["content-security-policy"] == CSP
        # The pages need no key; the API behind them does.
        assert http.get("/v1/conversations").status_code == 401
    pages = html_responses(api)
    assert "/ui/" in pages, sorted(pages)

    files = [f for f in WEB_DIR.rglob("*") if f.is_file() and "__pycache__" not in f.parts]
    assert {f.name for f in files} >= {"index.html", "app.js", "app.css"}
    for f in files:
        text = f.read_text("utf-8")
        external = re.findall(r"https?://(?!127\.0\.0\.1|localhost)[^\s\"'<>)]*", text)
        external += re.findall(r"(?:src|href|url)\s*[=(]\s*[\"']?//[^\s\"'<>)]*", text)
        assert not external, f"{f.name}: external URLs {external}"
        assert "innerHTML" not in text and "outerHTML" not in text and "insertAdjacentHTML" \
            not in text, f"{f.name}: builds HTML from strings"
        assert "eval(" not in text and "new Function" not in text, f.name
    html = (WEB_DIR / "index.html").read_text("utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html, re.I), "inline style or handler"


EXTERNAL = re.compile(
    r"""(?:\b(?:src|href|action|srcset|poster|data)\s*=\s*["']?|url\(\s*["']?|@import\s+["'])"""
    r"""\s*((?:[a-z][a-z0-9+.-]*:)?//[^\s"'<>)]*)""", re.I)
LOCAL_REF = re.compile(r"""\b(?:src|href)\s*=\s*["']?(?!data:|#|[a-z][a-z0-9+.-]*:|//)([^\s"'<>]+)""",
                       re.I)


def external_refs(text: str, base: str) -> list[str]:
    """Absolute URLs in src/href/url()/@import that point at another origin."""
    return [url for url in EXTERNAL.findall(text) if not url.startswith(f"{base}/")]


def html_responses(api: Api) -> dict[str, httpx.Response]:
    """Every HTML response the server gives to a GET of one of its routes, without a key and
    with an admin's (path parameters filled in), plus error pages; each one, and each script
    or style sheet it loads, must load nothing from another origin and carry the policy."""
    from starlette.routing import Mount

    paths = {"/no/such/page", "/docs", "/redoc", "/docs/oauth2-redirect", "/ui/no-such-page",
             "/ui/no-such-folder/"}
    for route in api.server.config.app.routes:
        if isinstance(route, Mount):
            paths |= {f"{route.path}/", route.path}
        elif "GET" in (getattr(route, "methods", None) or ()):
            paths.add(re.sub(r"\{[^}]+\}", "x", route.path))
    walker = api.container.users.add("html-walker", (), ("admin",))
    policy = web_headers(api.container.settings.serve.oidc)["Content-Security-Policy"]
    pages: dict[str, httpx.Response] = {}
    with httpx.Client(base_url=api.base, timeout=30) as http:
        for path in sorted(paths):
            for auth in ({}, {"Authorization": f"Bearer {walker}"}):
                reply = http.get(path, headers=auth)
                if "html" not in reply.headers.get("content-type", "") and \
                        not reply.text.lstrip().lower().startswith(("<!doctype", "<html")):
                    continue
                pages[path] = reply
                assert reply.headers.get("content-security-policy") == policy, (path, reply.headers)
                assert reply.headers.get("x-content-type-options") == "nosniff", path
                assert not external_refs(reply.text, api.base), (path, external_refs(reply.text,
                                                                                     api.base))
                for ref in LOCAL_REF.findall(reply.text):
                    asset = http.get(str(httpx.URL(str(reply.url)).join(ref)))
                    assert asset.status_code == 200, (path, ref)
                    assert asset.headers.get("content-security-policy") == policy, (path, ref)
                    if "css" in asset.headers.get("content-type", ""):
                        assert not external_refs(asset.text, api.base), (ref, external_refs(
                            asset.text, api.base))
    return pages


def test_api_docs_are_off_by_default(api: Api, keys: dict[str, str]) -> None:
    with httpx.Client(base_url=api.base, timeout=30) as http:
        for path in ("/docs", "/redoc", "/docs/swagger-ui-bundle.js", "/docs/oauth2-redirect"):
            assert http.get(path).status_code == 404, path
        refused = http.get("/openapi.json")
        assert refused.status_code == 401 and refused.json()["error"] == "unauthenticated"
        schema = http.get("/openapi.json", headers={"Authorization": f"Bearer {keys['emma']}"})
        assert schema.status_code == 200 and "/v1/chat" in schema.json()["paths"]


def test_api_docs_when_on_are_served_from_here_under_the_policy(docs_api: Api) -> None:
    with httpx.Client(base_url=docs_api.base, timeout=30) as http:
        assert http.get("/openapi.json").status_code == 200  # open, as asked
        assert http.get("/redoc").status_code == 404
        page = http.get("/docs")
        assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
        html = page.text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html, re.I), "inline style or handler"
        for name, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "text/css"),
                           ("init.js", "javascript")):
            asset = http.get(f"/docs/{name}")
            assert asset.status_code == 200 and kind in asset.headers["content-type"], name
            assert asset.headers["content-security-policy"] == CSP, name
    pages = html_responses(docs_api)
    assert {"/docs", "/ui/"} <= set(pages), sorted(pages)


# -- the browser ---------------------------------------------------------------------------------


@needs_chromium
def test_employee_asks_and_opens_a_citation(page: Any, api: Api, keys: dict[str, str],
                                            expected: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    # A wrong key: an error, and no chat.
    sign_in(page, api, "ek_wrong-key")
    expect(page.get_by_role("alert")).to_contain_text("unknown or revoked API key")
    expect(page.get_by_label("Question")).to_be_hidden()
    assert page.url.endswith("/ui/")

    page.get_by_label("API key").fill(keys["emma"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("tab", name="Chat")).to_have_attribute("aria-selected", "true")
    assert page.evaluate("sessionStorage.getItem('enclave.apiKey')") == keys["emma"]

    answer = ask(page, QUESTION)
    first = next(c for c in expected["citations"] if c["n"] == 1)
    expect(answer.locator(".answer-text")).to_have_text(expected["answer"])
    cite = answer.get_by_role("button", name=re.compile(r"^Citation 1: "))
    expect(cite).to_have_attribute("aria-label", re.compile(re.escape(first["source"])))
    cite.click()
    panel = page.get_by_role("dialog", name="Citation 1")
    expect(panel).to_be_visible()
    mark = panel.locator("mark")
    expect(mark).to_have_text(first["quote"])
    chunk = httpx.get(f"{api.base}/v1/chunks/{first['chunk_id']}", timeout=30,
                      headers={"Authorization": f"Bearer {keys['emma']}"}).json()
    expect(panel.locator("blockquote")).to_have_text(chunk["text"])
    expect(panel).to_contain_text(first["source"])
    expect(panel).to_contain_text(first["version"])
    shot(page, "web-chat-citation")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    # One number, several quotes (a sentence each): the second [1] marks its own quote.
    again = [c for c in expected["citations"] if c["n"] == 1][1:]
    if again:
        answer.get_by_role("button", name=re.compile(r"^Citation 1, quote 2: ")).click()
        expect(panel.locator("mark")).to_have_text(again[0]["quote"])
        panel.get_by_role("button", name="Close").click()
        expect(panel).to_be_hidden()

    # A follow-up stays in the conversation; the sidebar lists it and reopens its turns.
    ask(page, "And how many of those days can be carried over?")
    listed = page.get_by_role("button", name=re.compile("^Open conversation: "))
    expect(listed).to_have_count(2)  # this one, and the JSON API's in `expected`
    current = page.locator("#conversations button[aria-current='true']")
    expect(current).to_have_count(1)
    expect(current).to_contain_text("paid leave")
    conversation = page.locator(f"#conversations button[data-id='{current.get_attribute('data-id')}']")
    page.get_by_role("button", name="New conversation").click()
    expect(page.locator("#turns li.turn")).to_have_count(0)
    conversation.click()
    expect(page.locator("#turns li.turn")).to_have_count(2)
    expect(page.locator("#turns li.turn").first.locator(".answer-text")).to_have_text(
        expected["answer"])

    # Neither auditor nor admin: the header names her, and only the Chat tab shows. Hiding
    # a tab is a courtesy; the API refuses the audit route to her all the same.
    expect(page.locator("#who-text")).to_have_text(re.compile(r"^Signed in as emma \(employee\)"))
    expect(page.get_by_role("tab")).to_have_count(1)
    expect(page.get_by_role("tab", name="Chat")).to_be_visible()
    refused = httpx.get(f"{api.base}/v1/audit/records", timeout=30,
                        headers={"Authorization": f"Bearer {keys['emma']}"})
    assert refused.status_code == 403
    assert_all_named(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('enclave.apiKey')") is None
    expect(page.locator("#turns li, #conversations li")).to_have_count(0)  # nothing left behind
    no_unexpected_errors(page)


@needs_chromium
def test_refusal_is_shown_as_a_refusal(page: Any, api: Api, keys: dict[str, str]) -> None:
    from playwright.sync_api import expect

    sign_in(page, api, keys["emma"])
    answer = ask(page, "What is the airspeed velocity of an unladen swallow?")
    expect(answer).to_have_class(re.compile("refused"))
    expect(answer).to_contain_text("do not answer this question")
    expect(answer.get_by_role("list", name="Closest passages")).to_be_visible()
    no_unexpected_errors(page)


@needs_chromium
def test_auditor_finds_and_opens_the_record(page: Any, api: Api, keys: dict[str, str],
                                            expected: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    sign_in(page, api, keys["aldo"])
    page.get_by_role("tab", name="Audit").click()
    expect(page.get_by_text(re.compile(r"^Chain intact: \d+ records"))).to_be_visible()
    page.get_by_label("Text", exact=True).fill("paid leave")
    page.get_by_label("User", exact=True).fill("emma")
    page.get_by_role("button", name="Search records").click()
    rows = page.locator("#audit-table tbody tr")
    same = httpx.get(f"{api.base}/v1/audit/records", timeout=30,
                     params={"text": "paid leave", "user": "emma"},
                     headers={"Authorization": f"Bearer {keys['aldo']}"}).json()["records"]
    expect(rows).to_have_count(len(same))  # the filtered list has replaced the first one
    expect(rows.filter(has_text=QUESTION).first).to_be_visible()
    for row in rows.all():
        expect(row).to_contain_text("emma")

    audit = api.container.audit.get(expected["audit_id"])
    page.get_by_role("button", name=f"Open record {audit.seq}").click()
    detail = page.get_by_role("region", name=re.compile(rf"^Record #{audit.seq}"))
    expect(detail).to_contain_text(QUESTION)
    expect(detail).to_contain_text(expected["answer"])
    citations = detail.get_by_role("list", name="Citations").get_by_role("listitem")
    expect(citations).to_have_count(len(expected["citations"]))
    for item, c in zip(citations.all(), expected["citations"], strict=True):
        expect(item).to_contain_text(c["quote"])
        expect(item).to_contain_text("unsupported" if not c["supported"] else "supported")
    expect(detail).to_contain_text("content intact")
    passages = detail.get_by_role("list", name="Retrieved passages").get_by_role("listitem")
    expect(passages.first).to_be_visible()
    shot(page, "web-audit-record")

    with page.expect_download() as download:
        page.get_by_role("button", name="Export JSONL").click()
    saved = download.value
    assert saved.suggested_filename.endswith(".jsonl")
    lines = Path(saved.path()).read_text("utf-8").splitlines()
    assert lines and all(line.startswith("{") for line in lines)
    assert_all_named(page)
    no_unexpected_errors(page)


@needs_chromium
def test_the_audit_page_marks_an_altered_passage(page: Any, api: Api, keys: dict[str, str],
                                                 expected: dict[str, Any]) -> None:
    from playwright.sync_api import expect
    from sqlalchemy import text

    record = api.container.audit.get(expected["audit_id"])
    key = (record.body["retrieved"][0]["chunk_id"], record.body["retrieved"][0]["text_sha256"])
    original = api.container.audit.texts([key])[key].text
    edit = text("UPDATE audit_texts SET text = :t WHERE chunk_id = :c AND text_sha256 = :h")
    with api.container.database.engine.begin() as conn:
        conn.execute(edit, {"t": "Tampered passage text.", "c": key[0], "h": key[1]})
    try:
        sign_in(page, api, keys["aldo"])
        page.get_by_role("tab", name="Audit").click()
        expect(page.get_by_text(re.compile(r"^Chain BROKEN at record #\d+: the kept text of "
                                           rf"chunk {key[0]}"))).to_be_visible()
        page.get_by_role("button", name=f"Open record {record.seq}").click()
        detail = page.get_by_role("region", name=re.compile(rf"^Record #{record.seq}"))
        expect(detail).to_contain_text("kept texts ALTERED or missing")
        passages = detail.get_by_role("list", name="Retrieved passages").get_by_role("listitem")
        expect(passages.first).to_contain_text("ALTERED")
        expect(passages.first).to_contain_text("Tampered passage text.")
        if len(record.body["retrieved"]) > 1:
            expect(passages.nth(1)).not_to_contain_text("ALTERED")
    finally:
        with api.container.database.engine.begin() as conn:
            conn.execute(edit, {"t": original, "c": key[0], "h": key[1]})
    assert api.container.audit.verify().intact


@needs_chromium
def test_admin_submits_a_folder_and_sees_the_job_finish(page: Any, api: Api, share: Path,
                                                        keys: dict[str, str]) -> None:
    from playwright.sync_api import expect

    asked: list[str] = []

    def confirm(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", confirm)
    sign_in(page, api, keys["admin"])
    page.get_by_role("tab", name="Admin").click()
    page.get_by_label("Folders or files on the server (one per line)").fill(str(share))
    page.get_by_label("Groups (comma-separated; empty: public)").fill("ops")
    page.get_by_role("button", name="Submit job").click()
    detail = page.get_by_role("region", name=re.compile(r"^Job [0-9a-f]{8}: done$"))
    expect(detail).to_be_visible()
    files = detail.get_by_role("table", name="Files")
    broken = files.get_by_role("row").filter(has_text="broken.pdf")
    expect(broken.locator(".item-status")).to_have_text("failed")
    expect(broken.locator(".item-error")).to_contain_text("corrupt")
    for name in ("juniper.md", "lanterns.txt"):
        expect(files.get_by_role("row").filter(has_text=name).locator(".item-status")) \
            .to_have_text("done")
    jobs = page.get_by_role("table", name=re.compile("^Ingestion jobs"))
    expect(jobs.get_by_role("row").filter(has_text=str(share)).locator(".job-status")) \
        .to_have_text("done (with errors)")
    expect(page.get_by_role("button", name="Retry failed items")).to_be_enabled()
    expect(page.get_by_role("button", name="Cancel job")).to_be_disabled()
    assert asked == [f"Ingest 1 path ({share}), readable by ops?"]
    shot(page, "web-admin-job")
    assert_all_named(page)
    no_unexpected_errors(page)


@needs_chromium
def test_admin_syncs_a_source_from_the_sources_table(page: Any, api: Api, share: Path,
                                                    keys: dict[str, str]) -> None:
    from playwright.sync_api import expect

    from core.sources import Source

    api.container.sources.add(Source(name="team-share", kind="folder", location=str(share),
                                     mapping={"other": ("@public",)}, every_s=6 * 3600))
    sign_in(page, api, keys["admin"])
    page.on("dialog", lambda dialog: dialog.accept())  # "Sync team-share now?"
    page.get_by_role("tab", name="Admin").click()
    sources = page.get_by_role("table", name=re.compile("^Sources synced"))
    row = sources.get_by_role("row").filter(has_text="team-share")
    expect(row).to_contain_text("every 6h")
    expect(row.locator(".source-last")).to_have_text("never")
    row.get_by_role("button", name="Sync team-share now").click()
    detail = page.get_by_role("region", name=re.compile(r"^Job [0-9a-f]{8}: done$"))
    expect(detail).to_be_visible()
    expect(detail).to_contain_text("source:team-share")
    expect(row.locator(".source-last")).to_contain_text("done")
    shot(page, "web-admin-sources")
    assert_all_named(page)
    no_unexpected_errors(page)


@needs_chromium
def test_the_admin_page_keeps_following_a_job_through_rate_limits(page: Any, api: Api,
                                                                 share: Path) -> None:
    """A 429 on a poll waits for its Retry-After and polls again; it does not stop the page."""
    from playwright.sync_api import expect

    refused: list[str] = []

    def jobs(route: Any) -> None:
        # The first two reads of the jobs list after the submit are refused.
        if route.request.method == "GET" and len(refused) < 2 and submitted:
            refused.append(route.request.url)
            route.fulfill(status=429, headers={"Retry-After": "1"}, json={
                "error": "rate_limited", "detail": "rate limit: 60 requests a minute per key"})
        else:
            route.continue_()

    submitted: list[bool] = []
    page.route(re.compile(r"/v1/admin/jobs\?"), jobs)
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, api, own_admin(api, "polly"))
    page.get_by_role("tab", name="Admin").click()
    jobs_table = page.get_by_role("table", name=re.compile("^Ingestion jobs"))
    expect(jobs_table.locator("tbody tr").first).to_be_visible()  # the first read is done
    page.get_by_label("Folders or files on the server (one per line)").fill(str(share))
    submitted.append(True)
    page.get_by_role("button", name="Submit job").click()
    expect(page.locator("#status")).to_contain_text("trying again in 5 s")
    detail = page.get_by_role("region", name=re.compile(r"^Job [0-9a-f]{8}: done$"))
    expect(detail).to_be_visible(timeout=20_000)  # two refusals, 5 s apart, then the job
    assert len(refused) == 2
    no_unexpected_errors(page, also=r"status of 429\b")


@needs_chromium
def test_the_admin_pages_polls_stay_inside_the_keys_rate_limit(page: Any, api: Api) -> None:
    """While a job runs, the page's own reads, sustained, leave room in the key's budget."""
    from playwright.sync_api import expect

    job = {"job_id": "7" * 32, "owner": "pace", "status": "running", "sources": ["/srv/slow"],
           "groups": [], "sync": False, "planned": True, "created_at": "2026-12-03T10:00:00Z",
           "started_at": "2026-12-03T10:00:01Z", "finished_at": None,
           "counts": {"done": 1, "queued": 9}, "total": 10, "remaining": 9, "eta_s": 90.0,
           "error": None}
    page.route(re.compile(r"/v1/admin/jobs\?"), lambda route: route.fulfill(json={"jobs": [job]}))
    page.route(f"**/v1/admin/jobs/{job['job_id']}", lambda route: route.fulfill(
        json={**job, "items": [], "dead_letters": []}))
    reads: list[float] = []
    page.on("request", lambda r: reads.append(time.monotonic()) if "/v1/" in r.url else None)
    sign_in(page, api, own_admin(api, "pace"))
    page.get_by_role("tab", name="Admin").click()
    page.get_by_role("button", name=f"Open job {job['job_id'][:8]}").click()
    expect(page.get_by_role("region", name=re.compile(r"^Job 77777777: running$"))).to_be_visible()
    page.wait_for_timeout(3_000)  # past the page's first reads
    start = time.monotonic()
    page.wait_for_timeout(30_000)
    sustained = sum(1 for t in reads if start <= t < start + 30)
    limit = api.container.settings.serve.rate_per_minute
    assert sustained <= limit / 2, (sustained, limit)  # per 30 s: at most the key's rate
    assert sustained >= 6  # and it does keep polling (jobs, sources, job every 5 s)
    no_unexpected_errors(page)


@needs_chromium
def test_the_admin_pages_sections_are_one_click_away(page: Any, api: Api) -> None:
    from playwright.sync_api import expect

    sign_in(page, api, own_admin(api, "navi"))
    page.get_by_role("tab", name="Admin").click()
    # Once every section has loaded: a section that fills in later moves the others.
    expect(page.get_by_role("table", name=re.compile("^Users")).get_by_role("row")
           .filter(has_text="navi")).to_be_visible()
    expect(page.get_by_role("table", name=re.compile("^Golden sets")).locator("tbody tr")
           .first).to_be_visible()
    nav = page.get_by_role("navigation", name="Admin sections")
    for link, heading in (("Evaluation", "Evaluation"), ("People", "People"),
                          ("Documents", "Documents"), ("Jobs and sources", "Ingest a folder"),
                          ("Uploads", "Upload files")):
        nav.get_by_role("link", name=link).click()
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_in_viewport()
    assert_all_named(page)
    no_unexpected_errors(page)


@needs_chromium
def test_phone_layout(browser: Any, api: Api, keys: dict[str, str]) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        sign_in(page, api, keys["emma"])
        answer = ask(page, QUESTION)
        expect(answer.get_by_role("button", name=re.compile(r"^Citation 1: "))).to_be_visible()
        width = "document.documentElement.scrollWidth"
        assert page.evaluate(width) <= 390
        # The sidebar sits above the conversation.
        side = page.get_by_role("complementary", name="Conversations").bounding_box()
        main = page.get_by_label("Question").bounding_box()
        assert side and main and side["y"] + side["height"] <= main["y"]
        assert_all_named(page)
        shot(page, "web-phone-chat")
        answer.get_by_role("button", name=re.compile(r"^Citation 1: ")).click()
        expect(page.get_by_role("dialog").locator("mark")).not_to_be_empty()
        assert page.evaluate(width) <= 390
        shot(page, "web-phone-citation")
        page.get_by_role("button", name="Close").click()
        expect(page.get_by_role("tab")).to_have_count(1)  # an employee's one page
        page.get_by_role("button", name="Sign out").click()
        sign_in(page, api, keys["boss"])
        for tab in ("Audit", "Admin"):
            page.get_by_role("tab", name=tab).click()
            expect(page.get_by_role("tabpanel", name=tab)).to_be_visible()
            assert page.evaluate(width) <= 390
    finally:
        context.close()


@needs_chromium
def test_each_role_sees_its_name_and_only_the_tabs_it_may_open(page: Any, api: Api,
                                                              keys: dict[str, str]) -> None:
    """GET /v1/me decides the tabs: none shows that would only answer 403, and the arrow
    keys move between the tabs shown."""
    from playwright.sync_api import expect

    for user, who, tabs in [("aldo", "aldo (auditor)", ["Chat", "Audit"]),
                            ("admin", "root-admin (admin)", ["Chat", "Admin"]),
                            ("boss", "boss (admin, auditor)", ["Chat", "Audit", "Admin"])]:
        sign_in(page, api, keys[user])
        expect(page.locator("#who-text")).to_have_text(re.compile(rf"^Signed in as {re.escape(who)}"))
        expect(page.get_by_role("tab")).to_have_count(len(tabs))
        for i, name in enumerate(tabs):
            expect(page.get_by_role("tab").nth(i)).to_have_text(name)
        page.get_by_role("tab", name="Chat").focus()
        page.keyboard.press("ArrowRight")
        expect(page.get_by_role("tab", name=tabs[1])).to_have_attribute("aria-selected", "true")
        expect(page.get_by_role("tabpanel", name=tabs[1])).to_be_visible()
        page.keyboard.press("ArrowLeft")
        expect(page.get_by_role("tab", name="Chat")).to_have_attribute("aria-selected", "true")
        if user == "boss":
            shot(page, "web-header-roles")
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_label("API key")).to_be_visible()
    no_unexpected_errors(page)


@needs_chromium
def test_admin_issues_a_key_that_works_and_changes_a_users_groups(page: Any, api: Api,
                                                                 keys: dict[str, str]) -> None:
    """The People section: every change asks first; the key is shown once and works for the
    API; a refused change shows the server's message and the page stays usable."""
    from playwright.sync_api import expect

    from core.audit import Filters

    replies: list[str] = []  # what the next prompts are answered with
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept(replies.pop(0)) if dialog.type == "prompt" else dialog.accept()

    page.on("dialog", answer)
    sign_in(page, api, own_admin(api, "people-admin"))
    page.get_by_role("tab", name="Admin").click()
    people = page.get_by_role("region", name="People")
    people.get_by_label("User id").fill("nadia")
    people.get_by_label("Groups (comma-separated)").fill("finance")
    people.get_by_label("auditor").check()
    people.get_by_role("button", name="Issue key").click()
    shown = people.locator("#issued-value")
    expect(shown).to_have_text(re.compile(r"^enc_\S{40,}$"))
    assert asked[-1].startswith("Issue a new API key for nadia (groups: finance; roles: auditor)")
    key = shown.text_content() or ""

    def me() -> httpx.Response:
        return httpx.get(f"{api.base}/v1/me", timeout=30, headers={"Authorization": f"Bearer {key}"})

    assert me().json() == {"user_id": "nadia", "groups": ["finance"], "roles": ["auditor"],
                           "pages": ["chat", "audit"]}
    assert_all_named(page)
    shot(page, "web-admin-people")
    people.get_by_role("button", name="Done, hide the key").click()
    expect(people.locator("#issued-key")).to_be_hidden()
    expect(page.get_by_text(key)).to_have_count(0)  # shown once: gone from the page

    row = people.locator("tr[data-user='nadia']")
    expect(row).to_contain_text(key[:10])
    replies.append("finance, legal")
    row.get_by_role("button", name="Change groups of nadia").click()
    expect(row.locator("td").nth(1)).to_have_text("finance, legal")
    assert me().json()["groups"] == ["finance", "legal"]

    # Refused by the server: its message shows, nothing changed, the page goes on working.
    replies.append("auditor, owner")
    row.get_by_role("button", name="Change roles of nadia").click()
    expect(people.get_by_role("alert")).to_contain_text("unknown role(s) owner")
    expect(row.locator("td").nth(2)).to_have_text("auditor")

    row.get_by_role("button", name=re.compile(r"^Revoke key enc_\S+ of nadia$")).click()
    expect(row.locator("td").nth(3)).to_have_text("none")
    assert me().status_code == 401
    mine = [(r.kind, r.body.get("user")) for r in reversed(api.container.audit.records(
        Filters(user="people-admin"), 50)) if r.kind.startswith("user.")]
    assert mine[-3:] == [("user.key_issued", "nadia"), ("user.changed", "nadia"),
                         ("user.key_revoked", "nadia")]
    refused = [e for e in page.console_errors if "status of 400" in e]
    assert len(refused) == 1  # the unknown role's, which the browser logs; nothing else
    page.console_errors[:] = [e for e in page.console_errors if e not in refused]
    no_unexpected_errors(page)


@needs_chromium
def test_the_health_view_shows_the_service_and_follows_it(page: Any, api: Api,
                                                          keys: dict[str, str],
                                                          tmp_path: Path) -> None:
    """The checks and counts as GET /v1/admin/health gives them, refreshed while open: a
    document ingested meanwhile shows up without a click."""
    from playwright.sync_api import expect

    sign_in(page, api, own_admin(api, "health-admin"))
    page.get_by_role("tab", name="Admin").click()
    health = page.get_by_role("region", name=re.compile("^Health"))
    expect(health.locator("#health-state")).to_have_text("Ready")
    expected = api.http.get("/v1/admin/health").json()
    for name in ("database", "store", "model"):
        expect(health.locator("#health-checks dt", has_text=name)).to_have_count(1)
    documents = health.locator("#health-counts dd").first
    expect(documents).to_have_text(str(expected["counts"]["documents"]))
    expect(health.locator("#health-models")).to_contain_text(expected["models"]["embedder"])
    assert_all_named(page)
    shot(page, "web-admin-health")

    note = tmp_path / "kestrel.txt"
    note.write_text("Kestrels nest on the north tower from April.\n", "utf-8")
    assert not api.container.ingestor.ingest([note]).failed
    expect(documents).to_have_text(str(expected["counts"]["documents"] + 1), timeout=20_000)
    no_unexpected_errors(page)


@needs_chromium
def test_admin_uploads_three_files_and_sees_each_ones_outcome(page: Any, api: Api,
                                                              keys: dict[str, str],
                                                              tmp_path: Path) -> None:
    """Files chosen on this computer go through the upload route into a job; the job shows
    each file's outcome, the corrupt one's reason included; a finance employee then finds
    the uploaded text."""
    from playwright.sync_api import expect

    laptop = tmp_path / "laptop"
    laptop.mkdir()
    (laptop / "heron.md").write_text("# Herons\n\nGrey herons fish the mill pond at dawn.\n")
    (laptop / "otter.txt").write_text("Otters were seen under the east bridge in May.\n")
    (laptop / "torn.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntorn")
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, api, own_admin(api, "upload-admin"))
    page.get_by_role("tab", name="Admin").click()
    uploads = page.get_by_role("region", name="Upload files")
    listed = uploads.get_by_role("list", name="Files to upload").get_by_role("listitem")
    # A drop on the zone adds what was dropped; Clear empties the list again.
    dropped = page.evaluate_handle(
        "() => { const t = new DataTransfer(); "
        "t.items.add(new File(['x'], 'dropped.txt', {type: 'text/plain'})); return t; }")
    page.locator("#upload-zone").dispatch_event("drop", {"dataTransfer": dropped})
    expect(listed).to_have_text(["dropped.txt (1 B)"])
    uploads.get_by_role("button", name="Clear the list").click()
    expect(listed).to_have_count(0)
    uploads.get_by_label("Files", exact=True).set_input_files([str(p) for p in sorted(laptop.iterdir())])
    expect(listed).to_have_count(3)
    uploads.get_by_label("Groups of the uploaded files (comma-separated; empty: public)").fill("finance")
    uploads.get_by_role("button", name="Upload 3 files").click()

    detail = page.get_by_role("region", name=re.compile("^Job "))
    expect(detail.get_by_role("heading", name=re.compile(r"^Job \w+: done$"))).to_be_visible(
        timeout=120_000)
    rows = detail.locator("tr.item")
    expect(rows).to_have_count(3)
    expect(detail.locator("tr.item.done")).to_have_count(2)
    failed = detail.locator("tr.item.failed")
    expect(failed).to_have_count(1)
    expect(failed.locator(".clip")).to_have_text(re.compile(r"torn\.pdf$"))
    expect(failed.locator(".item-error")).to_have_text(re.compile(r"^corrupt: "))
    expect(listed).to_have_count(0)
    shot(page, "web-admin-upload")
    no_unexpected_errors(page)

    finance = api.container.users.add("fiona", ("finance",), ("employee",))
    found = httpx.post(f"{api.base}/v1/chat", json={"question": "Where do grey herons fish?"},
                       timeout=120, headers={"Authorization": f"Bearer {finance}"}).json()
    assert any(c["source"].endswith("heron.md") for c in found["citations"]), found


@needs_chromium
def test_admin_changes_a_documents_groups_and_searches_follow(page: Any, api: Api,
                                                              keys: dict[str, str],
                                                              tmp_path: Path) -> None:
    """Documents: find one, open it, change its groups (an employee of the new group then
    finds it, one of the old no longer does), and delete another after confirming."""
    from playwright.sync_api import expect

    question = "What is the hotel limit per night?"
    gus = api.container.users.add("gus", ("ops",), ("employee",))
    fay = api.container.users.add("fay", ("finance",), ("employee",))

    def cites_policy(key: str) -> bool:
        reply = httpx.post(f"{api.base}/v1/chat", json={"question": question}, timeout=120,
                           headers={"Authorization": f"Bearer {key}"}).json()
        return any(c["source"].endswith("expense-policy.pdf") for c in reply["citations"])

    assert not cites_policy(gus) and cites_policy(fay)
    replies = ["ops"]
    page.on("dialog", lambda d: d.accept(replies.pop(0)) if d.type == "prompt" else d.accept())
    sign_in(page, api, own_admin(api, "documents-admin"))
    page.get_by_role("tab", name="Admin").click()
    documents = page.get_by_role("region", name="Documents")
    documents.get_by_label("Path, name or title").fill("expense")
    documents.get_by_label("Type").fill("pdf")
    documents.get_by_role("button", name="Find documents").click()
    row = documents.locator("tr.document")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("expense-policy.pdf")
    expect(row.locator(".doc-groups")).to_have_text("finance")
    row.get_by_role("button", name=re.compile("^Open document ")).click()
    detail = documents.get_by_role("region", name=re.compile("^Document "))
    expect(detail).to_contain_text("Versions, newest first")
    detail.get_by_role("button", name="Change groups…").click()
    expect(row.locator(".doc-groups")).to_have_text("ops")
    expect(detail.locator("dl")).to_contain_text("ops")
    assert_all_named(page)
    shot(page, "web-admin-documents")
    try:
        assert cites_policy(gus) and not cites_policy(fay)
    finally:
        api.http.patch(f"/v1/admin/documents/{row.get_attribute('data-doc')}/groups",
                       json={"groups": ["finance"]})
    assert cites_policy(fay)

    note = tmp_path / "scratch-note.txt"
    note.write_text("A scratch note about the plover survey.\n", "utf-8")
    assert not api.container.ingestor.ingest([note]).failed
    documents.get_by_label("Path, name or title").fill("scratch-note")
    documents.get_by_label("Type").fill("")
    documents.get_by_role("button", name="Find documents").click()
    # The list had one row already (the policy): wait for the note's, not just for one row.
    expect(row).to_contain_text("scratch-note.txt")
    expect(row).to_have_count(1)
    row.get_by_role("button", name=re.compile("^Open document ")).click()
    expect(detail.get_by_role("heading")).to_have_text("Document scratch-note.txt")
    detail.get_by_role("button", name="Delete…").click()
    expect(documents.get_by_text("No documents match.")).to_be_visible()
    assert api.container.registry.find_by_source(str(note.resolve())) is None
    kinds = [r.kind for r in api.container.audit.records(Filters(user="documents-admin"), 20)]
    assert "document.groups_changed" in kinds and "document.deleted" in kinds
    no_unexpected_errors(page)


@needs_chromium
def test_stream_parsing_hostile_text_and_unsupported_citations(
        page: Any, api: Api, keys: dict[str, str]) -> None:
    """A scripted stream (CRLF-separated, as sse-starlette sends): a verified sentence, then an
    answer whose texts are hostile HTML and whose second citation is unsupported. Text stays
    text."""
    from playwright.sync_api import expect

    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    cite = {"chunk_id": "00000000-0000-4000-8000-000000000001", "doc_id": "d", "version": "v1",
            "page": 3, "start": 0, "end": 0}
    answer = {
        "conversation_id": "c0", "outcome": "answered", "refused": False, "model": "scripted",
        "timings": {},
        "audit_id": "a0", "answer": f"Bold claim {hostile} [1]. Another claim [2].",
        "citations": [
            {**cite, "n": 1, "source": f"/docs/{hostile}.md", "quote": "quoted text",
             "supported": True, "ocr": True},
            {**cite, "n": 2, "source": "/docs/b.md", "quote": "other words", "supported": False},
        ],
    }
    events = [("sentence", {"index": 0, "text": f"Bold claim {hostile} [1].", "supported": True,
                            "citations": []}), ("answer", answer)]
    body = "".join(f"event: {name}\r\ndata: {json.dumps(data)}\r\n\r\n" for name, data in events)
    page.route("**/v1/chat", lambda route: route.fulfill(
        status=200, body=body, headers={"Content-Type": "text/event-stream; charset=utf-8"}))
    chunk = {"chunk_id": cite["chunk_id"], "doc_id": "d", "version": "v1", "source": "/docs/b.md",
             "title": hostile, "text": f"{hostile} before quoted text after", "page_start": 3,
             "page_end": 3, "char_start": 0, "char_end": 60}
    page.route("**/v1/chunks/*", lambda route: route.fulfill(
        status=200, body=json.dumps(chunk), headers={"Content-Type": "application/json"}))

    sign_in(page, api, keys["emma"])
    shown = ask(page, "Anything?")
    expect(shown.locator(".answer-text")).to_have_text(
        f"Bold claim {hostile} [1]. Another claim [2] unsupported.")
    bad = shown.get_by_role("button", name="Citation 2: /docs/b.md, page 3 (unsupported)")
    expect(bad).to_have_class(re.compile(r"\bunsupported\b"))
    expect(bad).to_contain_text("unsupported")
    expect(shown.locator("li.source.unsupported")).to_contain_text("unsupported")
    # Citation 1 was read by OCR from a scan: the list and the passage view say so.
    expect(shown.locator("li.source").first.locator(".ocr")).to_have_text("(OCR)")
    expect(shown.locator("li.source").nth(1).locator(".ocr")).to_have_count(0)
    shown.get_by_role("button", name=re.compile(r"^Citation 1: ")).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("mark")).to_have_text("quoted text")
    expect(dialog.locator("#citation-meta")).to_contain_text("read by OCR")
    expect(dialog.locator("blockquote")).to_have_text(chunk["text"])
    assert page.locator("img, #turns script, dialog script").count() == 0
    assert page.evaluate("window.pwned") is None
    no_unexpected_errors(page)


SLOW_STREAM = """
(() => {
  const real = window.fetch;
  window.fetch = (url, init) => {
    if (!String(url).endsWith("/v1/chat")) return real(url, init);
    const enc = new TextEncoder();
    const sentence = (i, text) => "event: sentence\\r\\ndata: " + JSON.stringify(
      {index: i, text, supported: true, citations: []}) + "\\r\\n\\r\\n";
    const body = new ReadableStream({
      async start(controller) {
        // Chunks split mid-event and between \\r and \\n, as a network may deliver them.
        const first = sentence(0, "Employees get 28 days [1].");
        controller.enqueue(enc.encode(first.slice(0, 9)));
        controller.enqueue(enc.encode(first.slice(9, -1)));
        controller.enqueue(enc.encode(first.slice(-1)));
        while (!window.second) await new Promise((r) => setTimeout(r, 20));
        controller.enqueue(enc.encode(sentence(1, "Five days carry over [1].")));
        while (!window.release) await new Promise((r) => setTimeout(r, 20));
        controller.enqueue(enc.encode("event: answer\\r\\ndata: " + JSON.stringify(window.release)
                                      + "\\r\\n\\r\\n"));
        controller.close();
      },
    });
    return Promise.resolve(new Response(body, {
      status: 200, headers: {"Content-Type": "text/event-stream; charset=utf-8"}}));
  };
})();
"""


@needs_chromium
def test_verified_sentences_show_one_by_one_while_streaming(page: Any, api: Api,
                                                           keys: dict[str, str]) -> None:
    """Each verified sentence appears as it arrives (in a live region), then the whole answer,
    as recorded, replaces them."""
    from playwright.sync_api import expect

    page.add_init_script(SLOW_STREAM)
    sign_in(page, api, keys["emma"])
    page.get_by_label("Question").fill("How long is the leave?")
    page.get_by_label("Question").press("Enter")  # Enter sends
    answer = page.locator("#turns li.turn").last.locator(".answer")
    expect(answer.locator(".live")).to_have_text("Employees get 28 days [1].")
    expect(answer).to_have_class(re.compile("streaming"))
    expect(answer.locator(".tokens")).to_be_hidden()
    page.evaluate("() => { window.second = true; }")
    expect(answer.locator(".live")).to_have_text(
        "Employees get 28 days [1]. Five days carry over [1].")
    assert page.locator("#turns").get_attribute("aria-live") == "polite"
    final = {"conversation_id": "c1", "outcome": "answered",
             "answer": "Employees get 28 days [1]. Five days carry over [1].", "refused": False,
             "citations": [], "model": "scripted", "timings": {}, "audit_id": "a1"}
    page.evaluate("answer => { window.release = answer; }", final)
    expect(answer.locator(".answer-text")).to_have_text(final["answer"])
    expect(answer.locator(".live, .tokens")).to_have_count(0)
    expect(page.get_by_role("status")).to_have_text("Answer ready.")
    no_unexpected_errors(page)


@needs_chromium
def test_an_unverified_answer_is_shown_as_quotes(page: Any, api: Api,
                                                 keys: dict[str, str]) -> None:
    from playwright.sync_api import expect

    cite = {"n": 1, "chunk_id": "00000000-0000-4000-8000-000000000002", "doc_id": "d",
            "version": "v1", "source": "handbook.md", "page": None, "start": 0, "end": 10,
            "quote": "Every employee receives 28 days of paid leave.", "supported": False}
    answer = {"conversation_id": "c2", "outcome": "unverified", "refused": True,
              "answer": "Relevant passages were found, but no sentence of the model's answer "
                        "could be verified against them.\n[1] \"Every employee receives 28 "
                        "days of paid leave.\" (handbook.md)",
              "citations": [cite], "model": "scripted", "timings": {}, "audit_id": "a2"}
    body = f"event: answer\r\ndata: {json.dumps(answer)}\r\n\r\n"
    page.route("**/v1/chat", lambda route: route.fulfill(
        status=200, body=body, headers={"Content-Type": "text/event-stream; charset=utf-8"}))
    sign_in(page, api, keys["emma"])
    shown = ask(page, "How many days of leave?")
    expect(shown.locator(".refusal-tag")).to_have_text("Unverified: quotes, not an answer")
    expect(shown.get_by_role("list", name="Quotes")).to_contain_text("28 days of paid leave")
    expect(page.get_by_role("status")).to_have_text(re.compile("could be verified|closest"))
    no_unexpected_errors(page)


@needs_chromium
def test_api_docs_render_without_leaving_the_server(page: Any, docs_api: Api) -> None:
    """Swagger UI draws the API from this server alone, with no policy violation."""
    from playwright.sync_api import expect

    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{docs_api.base}/docs")
    expect(page.locator(".opblock-summary-path", has_text="/v1/chat").first).to_be_visible()
    page.locator(".opblock-summary", has_text="/v1/chat").first.click()
    expect(page.get_by_role("button", name="Try it out").first).to_be_visible()
    shot(page, "api-docs")
    elsewhere = [u for u in requested if not u.startswith((f"{docs_api.base}/", "data:"))]
    assert not elsewhere, elsewhere
    assert f"{docs_api.base}/openapi.json" in requested
    no_unexpected_errors(page)


@needs_chromium
def test_employee_rates_an_answer_and_the_auditor_filters_by_it(page: Any, api: Api,
                                                                keys: dict[str, str]) -> None:
    """Thumbs down with a comment under a streamed answer; the auditor finds that answer by
    its rating, and reads the rating and the comment in its record."""
    from playwright.sync_api import expect

    from core.feedback import feedback_on

    comment = "It says nothing about part-time staff."
    sign_in(page, api, keys["emma"])
    answer = ask(page, QUESTION)
    meta = answer.locator(".meta-line").inner_text()
    found = re.search(r"audit record ([0-9a-f-]{36})", meta)
    assert found, meta
    audit_id = found.group(1)
    rating = answer.get_by_role("group", name="Feedback on this answer")
    up = rating.get_by_role("button", name="Helpful (thumbs up)", exact=True)
    down = rating.get_by_role("button", name="Not helpful (thumbs down)", exact=True)
    expect(down).to_have_attribute("aria-pressed", "false")
    expect(rating.get_by_label("Comment (optional)")).to_be_hidden()  # until a thumb is clicked
    down.click()
    expect(rating).to_contain_text("Thanks — recorded")
    expect(down).to_have_attribute("aria-pressed", "true")
    expect(up).to_have_attribute("aria-pressed", "false")
    box = rating.get_by_label("Comment (optional)")
    expect(box).to_be_focused()
    box.fill(comment)
    rating.get_by_role("button", name="Send comment").click()
    expect(box).to_be_hidden()
    expect(rating.locator(".feedback-note")).to_have_text("Thanks — recorded")
    stored = feedback_on(api.container.audit, audit_id)
    assert stored and (stored.rating, stored.comment, stored.user_id) == ("down", comment, "emma")
    assert_all_named(page)
    shot(page, "web-chat-feedback")

    # A refusal from the server is said, and the page stays usable.
    page.route(f"**/v1/answers/{audit_id}/feedback", lambda route: route.fulfill(
        status=429, body=json.dumps({"error": "rate_limited", "detail": "slow down"}),
        headers={"Content-Type": "application/json"}))
    up.click()
    expect(rating.locator(".feedback-note")).to_have_text("Feedback not recorded: slow down")
    expect(down).to_have_attribute("aria-pressed", "true")  # still the recorded rating
    expect(up).to_be_enabled()
    page.unroute(f"**/v1/answers/{audit_id}/feedback")
    expect(page.get_by_label("Question")).to_be_enabled()
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, api, keys["aldo"])
    page.get_by_role("tab", name="Audit").click()
    expect(page.get_by_text(re.compile(r"^Chain intact: \d+ records"))).to_be_visible()
    page.get_by_label("Feedback", exact=True).select_option("down")
    page.get_by_role("button", name="Search records").click()
    rows = page.locator("#audit-table tbody tr")
    rated_down = httpx.get(f"{api.base}/v1/audit/records", timeout=30, params={"feedback": "down"},
                           headers={"Authorization": f"Bearer {keys['aldo']}"}).json()["records"]
    assert audit_id in {r["record_id"] for r in rated_down}
    expect(rows).to_have_count(len(rated_down))
    for row in rows.all():
        expect(row).to_contain_text("rated down")
    record = api.container.audit.get(audit_id)
    row = rows.filter(has=page.get_by_role("button", name=f"Open record {record.seq}", exact=True))
    expect(row).to_contain_text(QUESTION)
    row.get_by_role("button", name=f"Open record {record.seq}", exact=True).click()
    detail = page.get_by_role("region", name=re.compile(rf"^Record #{record.seq}"))
    about = detail.get_by_label("Feedback from the asker")
    expect(about).to_contain_text("down")
    expect(about).to_contain_text(comment)
    expect(about).to_contain_text(stored.feedback_record_id)
    shot(page, "web-audit-feedback")
    assert_all_named(page)
    # The browser logs the scripted 429 as a failed resource; nothing else may be logged.
    real = [e for e in page.console_errors if not re.search(r"status of 4(0[13]|29)\b", e)]
    assert not real, real


def _allowed_errors(page: Any, statuses: str) -> None:
    """Nothing logged but failed resources of these statuses (a regex: the refusals a test
    provokes on purpose)."""
    real = [e for e in page.console_errors if not re.search(rf"status of ({statuses})\b", e)]
    assert not real, real


@needs_chromium
def test_auditor_adds_an_answer_to_a_golden_set(page: Any, api: Api, keys: dict[str, str],
                                                expected: dict[str, Any]) -> None:
    """The form under an answer's record: prefilled from the record, corrected, confirmed,
    posted; the server's refusal of a second addition is shown."""
    from playwright.sync_api import expect

    decisions = iter([False, True, True])  # cancel the first confirmation, accept the others
    asked: list[str] = []

    def decide(dialog: Any) -> None:
        asked.append(dialog.message)
        if next(decisions):
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", decide)
    sign_in(page, api, keys["aldo"])
    page.get_by_role("tab", name="Audit").click()
    page.get_by_label("Text", exact=True).fill("paid leave")
    page.get_by_label("User", exact=True).fill("emma")
    page.get_by_role("button", name="Search records").click()
    record = api.container.audit.get(expected["audit_id"])
    page.get_by_role("button", name=f"Open record {record.seq}", exact=True).click()
    detail = page.get_by_role("region", name=re.compile(rf"^Record #{record.seq}"))
    form = detail.get_by_role("form", name="Add to golden set")
    cited = list(dict.fromkeys(c["doc_id"] for c in expected["citations"] if c["supported"]))
    documents = form.get_by_label("Expected documents (one per line)")
    expect(documents).to_have_value("\n".join(cited))
    expect(form.get_by_label("Answerable from the documents")).to_be_checked()

    form.get_by_label("Golden set", exact=True).fill("web-golden")
    documents.fill(f"{cited[0]}\n\npublic/leave-policy.md\n")
    form.get_by_label("Reference answer (optional)").fill("28 days of paid leave.")
    submit = form.get_by_role("button", name="Add to golden set")
    submit.click()  # cancelled: nothing is sent
    assert asked == ['Add this question to the golden set "web-golden"?']
    assert "web-golden" not in {s.name for s in api.container.golden.sets()}
    submit.click()
    result = form.get_by_role("status")
    expect(result).to_have_text(f'Added to the golden set "web-golden" as audit-{record.seq} '
                                "(answerable, 2 expected documents).")
    [question] = api.container.golden.questions("web-golden")
    assert question.documents == (cited[0], "public/leave-policy.md")
    assert (question.added_by, question.from_record) == ("aldo", expected["audit_id"])
    assert question.reference == "28 days of paid leave."
    shot(page, "web-audit-golden")

    submit.click()  # the same question again: the server says why not, the form stays
    expect(result).to_have_text(re.compile(r"^Not added: golden set 'web-golden' already holds"))
    expect(submit).to_be_enabled()
    assert len(api.container.golden.questions("web-golden")) == 1
    assert_all_named(page)
    _allowed_errors(page, "400")


@needs_chromium
def test_admin_compares_two_evaluation_runs(page: Any, api: Api, keys: dict[str, str]) -> None:
    """Runs recorded by the RunBook are listed with their figures; two selected show the newer
    against the older in a sandboxed frame, drawn with the report's own styles; a run gone
    meanwhile is a message, and the page goes on."""
    from playwright.sync_api import expect
    from sqlalchemy import text

    from core.golden import GoldenQuestion, parse_golden
    from serve.http.routes.web import REPORT_FRAME_HEADERS

    book = api.container.eval_runs

    def run(config: str, recall: float) -> str:
        run_id = book.start("web-batch", "web-set", "0" * 64, config, {"k": 4}, "root-admin")
        book.finish(run_id, {"questions": 1, "answerable_answered": 1.0, "citation_precision": 0.9,
                             "citation_recall": recall, "latency_p50_s": 1.0,
                             "latency_p95_s": 2.5},
                    [{"id": "q1", "question": QUESTION, "answerable": True, "outcome": "answered",
                      "correct_outcome": True, "answer": "28 days [1].", "cited": ["handbook"]}])
        return run_id

    older, newer = run("web-base", 0.5), run("web-new", 0.75)
    api.container.golden.add("web-set", GoldenQuestion(qid="q1", question=QUESTION,
                                                       documents=("handbook",), added_by="aldo"))
    with httpx.Client(base_url=api.base, timeout=30) as http:
        frame_page = http.get("/ui/report-frame.html")
        assert frame_page.status_code == 200
        for name, value in REPORT_FRAME_HEADERS.items():
            assert frame_page.headers[name] == value, name

    sign_in(page, api, keys["admin"])
    page.get_by_role("tab", name="Admin").click()
    section = page.get_by_role("region", name="Evaluation")
    runs = section.get_by_role("table", name=re.compile("^Evaluation runs"))
    latest = runs.get_by_role("row").filter(has_text="web-new")
    for shown in ("web-set", "done", "100.0%", "90.0%", "75.0%", "2.50 s"):
        expect(latest).to_contain_text(shown)
    compare = section.get_by_role("button", name="Compare with baseline")
    expect(compare).to_be_disabled()
    section.get_by_label(f"Select run web-new {newer[:8]}").check()
    expect(compare).to_be_disabled()
    section.get_by_label(f"Select run web-base {older[:8]}").check()
    expect(compare).to_be_enabled()
    compare.click()
    expect(section.get_by_role("heading", name=re.compile(
        rf"^Report: web-new \({newer[:8]}\) against the baseline web-base"))).to_be_visible()
    viewer = page.locator("#eval-report-frame")
    assert viewer.get_attribute("sandbox") == "allow-scripts"
    assert page.frame_locator("#eval-report-frame").locator("#report") \
        .get_attribute("sandbox") == ""
    report = page.frame_locator("#eval-report-frame").frame_locator("#report")
    expect(report.locator("svg").first).to_be_visible()
    expect(report.locator("h2", has_text="Against the baseline")).to_be_visible()
    expect(report.locator("body")).to_contain_text("+25.0 pp")  # the recall's change
    # The report's inline styles apply: its frame has a policy that allows them.
    assert report.locator("h2").first.evaluate("e => getComputedStyle(e).borderBottomStyle") \
        == "solid"
    shot(page, "web-admin-evaluation")

    sets = section.get_by_role("table", name=re.compile("^Golden sets"))
    expect(sets.get_by_role("row").filter(has_text="web-set")).to_contain_text("1")
    with page.expect_download() as download:
        sets.get_by_role("button", name="Download golden set web-set as JSONL").click()
    assert download.value.suggested_filename == "web-set.jsonl"
    [saved] = parse_golden(Path(download.value.path()).read_text("utf-8"))
    assert saved.qid == "q1" and saved.added_by == "aldo"

    # A run removed after the list was drawn: the server's message, and the page goes on.
    gone = run("web-gone", 0.25)
    section.get_by_role("button", name="Refresh runs").click()
    section.get_by_label(f"Select run web-new {newer[:8]}").uncheck()
    section.get_by_label(f"Select run web-base {older[:8]}").uncheck()
    section.get_by_label(f"Select run web-gone {gone[:8]}").check()
    with api.container.database.engine.begin() as conn:
        for table in ("eval_results", "eval_runs"):
            conn.execute(text(f"DELETE FROM {table} WHERE run_id = :r"), {"r": gone})
    section.get_by_role("button", name="Report", exact=True).click()
    expect(section.get_by_role("alert")).to_have_text(
        re.compile(rf"^Evaluation: no evaluation run '{gone}'"))
    section.get_by_role("button", name="Refresh runs").click()
    expect(runs.get_by_role("row").filter(has_text="web-gone")).to_have_count(0)
    expect(section.get_by_role("button", name="Report", exact=True)).to_be_disabled()
    expect(page.locator("#eval-error")).to_be_empty()
    assert_all_named(page)
    _allowed_errors(page, "404")
