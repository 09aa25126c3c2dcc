"""The intranet-website connector (ingest/sources/web.py) against a real HTTP server on
127.0.0.1: what a crawl lists and what it must never touch (other origins, what robots.txt
forbids), that it ends on link loops and stops at its limits, that signals change only with
content, and that anything short of a whole listing raises SourceError, since a listing cut
short would otherwise delete documents."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import mimetypes
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast
from urllib.parse import unquote, urlsplit

import pytest

from core.errors import SourceError, TooLarge, UnreadableFile
from ingest.parse import parse_file
from ingest.sources.base import Entry
from ingest.sources.web import WebConnector, normalise
from serve.cli.demo import write_pdf
from tests.conftest import free_port


@dataclass
class Site:
    """What the test server serves and what it was asked for."""

    root: Path
    url: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)
    # Paths answered with HTTP 500, as a server whose one page breaks.
    failing: set[str] = field(default_factory=set)
    redirects: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None
    # "etag", "last-modified" or "none": which validator responses carry.
    validator: str = "etag"
    head_allowed: bool = True
    # Without Content-Length the body ends when the connection closes (HTTP/1.0).
    content_length: bool = True

    def write(self, path: str, content: str | bytes) -> Path:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_text(content, encoding="utf-8")
        else:
            target.write_bytes(content)
        return target

    def asked(self, method: str | None = None) -> list[str]:
        """The paths requested (with their query), in order."""
        return [path for m, path in self.requests if method is None or m == method]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: Site


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._serve(with_body=True)

    def do_HEAD(self) -> None:
        if not cast(_Server, self.server).site.head_allowed:
            self.send_error(405)
            return
        self._serve(with_body=False)

    def _serve(self, with_body: bool) -> None:
        site = cast(_Server, self.server).site
        site.requests.append((self.command, self.path))
        path = urlsplit(self.path).path
        if site.auth is not None:
            expected = "Basic " + base64.b64encode(":".join(site.auth).encode()).decode()
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="intranet"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        if path in site.failing:
            self.send_error(500)
            return
        if path in site.redirects:
            self.send_response(302)
            self.send_header("Location", site.redirects[path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        file = site.root / unquote(path).lstrip("/")
        if file.is_dir():
            file = file / "index.html"
        if not file.is_file():
            self.send_error(404)
            return
        data = file.read_bytes()
        self.send_response(200)
        content_type = site.types.get(path) or mimetypes.guess_type(file.name)[0]
        self.send_header("Content-Type", content_type or "application/octet-stream")
        if site.content_length:
            self.send_header("Content-Length", str(len(data)))
        if site.validator == "etag":
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()[:16]}"')
        elif site.validator == "last-modified":
            self.send_header("Last-Modified", formatdate(file.stat().st_mtime, usegmt=True))
        self.end_headers()
        if with_body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # a quiet test run


def _serve(site: Site, wrap: object = None) -> Iterator[Site]:
    server = _Server(("127.0.0.1", 0), _Handler)
    if wrap is not None:
        server.socket = wrap.wrap_socket(server.socket, server_side=True)  # type: ignore[attr-defined]
    server.site = site
    port = server.server_address[1]
    site.url = f"{'https' if wrap else 'http'}://127.0.0.1:{port}/"
    # A short poll lets shutdown() return at once rather than after half a second.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()


def _build(site: Site) -> None:
    """The test intranet. Depths from the start page: index 0; a, b, the PDF, the report,
    deep/1 at 1; deep/N at N. /only-in-sitemap.html is reached only through the sitemap."""
    url = site.url
    other_scheme = url.replace("http://", "https://")
    site.write("robots.txt", "User-agent: *\nDisallow: /private/\n")
    site.write("sitemap.xml", f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>{url}only-in-sitemap.html</loc></url>
  <url><loc>{url}</loc></url>
  <url><loc>http://elsewhere.invalid/from-sitemap.html</loc></url>
  <url><loc>{url}private/in-sitemap.html</loc></url>
</urlset>
""")
    site.write("index.html", f"""<!DOCTYPE html>
<html><head><title>Intranet home</title></head><body>
<h1>Welcome to the intranet</h1>
<p>The canteen opens at half past eleven.</p>
<a href="#top">top</a> <a href="/">home</a> <a href="a.html">A</a> <a href="b.html">B</a>
<a href="files/handbook.pdf">Handbook</a> <a href="files/report">Report</a>
<a href="files/setup.exe">Installer</a>
<a href="http://elsewhere.invalid/page.html">elsewhere</a> <a href="{other_scheme}">https</a>
<a href="mailto:hr@example.com">HR</a> <a href="private/secret.html">secret</a>
<a href="missing.html">dead link</a> <a href="deep/1.html">deep</a>
</body></html>
""")
    site.write("a.html", '<html><body><p>Page A</p><a href="b.html">B</a> <a href="a.html">self</a> '
                         '<a href="a.html#part">part</a> <a href="/deep/../a.html">dots</a> '
                         '<a href="/">home</a></body></html>')
    site.write("b.html", '<html><body><p>Page B</p><a href="a.html">A</a> '
                         '<a href="a.html?print=1">print</a> <a href="./">home</a></body></html>')
    site.write("only-in-sitemap.html", "<html><body><p>Only the sitemap knows me</p></body></html>")
    site.write("private/secret.html", "<html><body>secret</body></html>")
    site.write("private/in-sitemap.html", "<html><body>secret too</body></html>")
    (site.root / "files").mkdir()
    write_pdf(site.root / "files" / "handbook.pdf", [["Travel handbook", "Trains below 700 km."]])
    write_pdf(site.root / "files" / "report", [["Quarterly report"]])
    site.types["/files/report"] = "application/pdf"
    site.write("files/setup.exe", b"MZ" + b"\0" * 100)
    for n in range(1, 8):
        site.write(f"deep/{n}.html", f'<html><body><a href="{n + 1}.html">next</a></body></html>')


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    served = Site(tmp_path / "site")
    served.root.mkdir()
    for running in _serve(served):
        _build(running)
        yield running


def _list(site: Site, start: str = "", **options: object) -> list[Entry]:
    with WebConnector(site.url + start, **options) as web:  # type: ignore[arg-type]
        return list(web.entries())


def _paths(entries: list[Entry], site: Site) -> list[str]:
    assert all(e.key.startswith(site.url) for e in entries)
    return [e.key[len(site.url) - 1:] for e in entries]


EVERYTHING = {
    "/", "/only-in-sitemap.html", "/a.html", "/b.html", "/files/handbook.pdf", "/files/report",
    "/deep/1.html", "/deep/2.html", "/deep/3.html", "/a.html?print=1",
}


def test_lists_pages_and_linked_files_of_the_site_once_each(site: Site) -> None:
    entries = _list(site, max_depth=3)
    paths = _paths(entries, site)
    # Not: the other origins, the forbidden pages, the dead link, the installer no parser
    # reads, deep/4 beyond max_depth. A page reached by several links is listed once.
    assert sorted(paths) == sorted(EVERYTHING)
    # Link loops (a <-> b, self links, links home) end: no page is requested twice.
    gets = site.asked("GET")
    assert len(gets) == len(set(gets))
    assert not [p for p in site.asked() if p.startswith("/private/")]
    assert "/missing.html" in gets  # a dead link is tried, then skipped
    by_path = dict(zip(paths, entries, strict=True))
    home, pdf, report = by_path["/"], by_path["/files/handbook.pdf"], by_path["/files/report"]
    assert (home.location, home.display, home.filename, home.principals) == (
        site.url, "/", "index.html", ())
    assert (pdf.key, pdf.location, pdf.display, pdf.filename) == (
        site.url + "files/handbook.pdf", site.url + "files/handbook.pdf",
        "/files/handbook.pdf", "handbook.pdf")
    assert by_path["/a.html?print=1"].display == "/a.html?print=1"
    # No extension in the URL: the Content-Type names the parser.
    assert report.filename == "report.pdf"
    assert {e.signal.split(":")[0] for e in entries} == {"etag"}
    # A file is listed by its headers alone: its bytes are read only when it is fetched.
    assert "/files/handbook.pdf" in site.asked("HEAD")
    assert "/files/handbook.pdf" not in gets


def test_robots_txt_names_the_sitemaps_and_an_index_names_more(site: Site) -> None:
    (site.root / "sitemap.xml").unlink()
    site.write("robots.txt", f"User-agent: *\nDisallow: /private/\nSitemap: {site.url}maps/index.xml\n")
    site.write("maps/index.xml", f"""<?xml version="1.0"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>{site.url}maps/pages.xml</loc></sitemap>
  <sitemap><loc>{site.url}maps/index.xml</loc></sitemap>
</sitemapindex>""")
    site.write("maps/pages.xml", f"""<?xml version="1.0"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
  <url><loc>{site.url}only-in-sitemap.html</loc>
       <image:image><image:loc>{site.url}photo.jpg</image:loc></image:image></url>
</urlset>""")
    paths = _paths(_list(site, max_depth=0), site)
    # The sitemaps themselves are never entries, nor an image a sitemap names for a page.
    assert paths == ["/", "/only-in-sitemap.html"]
    assert site.asked("GET").count("/maps/index.xml") == 1


def test_a_page_that_is_not_a_sitemap_at_sitemap_xml_is_ignored(site: Site) -> None:
    # Some intranets answer any path with a page of their own.
    site.write("sitemap.xml", "<html><body>Not found</body></html>")
    assert "/only-in-sitemap.html" not in _paths(_list(site, max_depth=1), site)


def test_robots_txt_that_forbids_the_start_url_fails_instead_of_listing_nothing(site: Site) -> None:
    site.write("robots.txt", "User-agent: enclave-sync\nDisallow: /\n\nUser-agent: *\nAllow: /\n")
    with pytest.raises(SourceError, match=r"robots\.txt disallows it for enclave-sync"):
        _list(site)
    # Another agent may read it all.
    paths = _paths(_list(site, user_agent="other-bot", max_depth=3), site)
    assert sorted(paths) == sorted(EVERYTHING | {"/private/secret.html", "/private/in-sitemap.html"})


def test_no_robots_txt_allows_everything(site: Site) -> None:
    (site.root / "robots.txt").unlink()
    paths = _paths(_list(site, max_depth=1), site)
    assert "/private/secret.html" in paths and "/private/in-sitemap.html" in paths


@pytest.mark.parametrize(("max_depth", "deepest"), [(0, 0), (1, 1), (4, 4), (5, 5)])
def test_max_depth_counts_link_hops_from_the_start(site: Site, max_depth: int, deepest: int) -> None:
    paths = _paths(_list(site, max_depth=max_depth), site)
    assert {p for p in paths if p.startswith("/deep/")} == {f"/deep/{n}.html" for n in range(1, deepest + 1)}
    # The sitemap's pages are starting points, at depth 0.
    assert {"/", "/only-in-sitemap.html"} <= set(paths)
    if max_depth == 0:
        assert paths == ["/", "/only-in-sitemap.html"]


def test_max_pages_stops_the_crawl(site: Site) -> None:
    paths = _paths(_list(site, max_pages=3), site)
    # Breadth-first: the start, the sitemap's pages, then the start page's links in order.
    assert paths == ["/", "/only-in-sitemap.html", "/a.html"]
    assert site.asked() == ["/robots.txt", "/sitemap.xml", "/", "/only-in-sitemap.html", "/a.html"]


def test_include_and_exclude_match_the_path_and_prune_the_crawl(site: Site) -> None:
    deep = _paths(_list(site, include=["/deep/*"], max_depth=3), site)
    # The start page is read for its links but is not listed.
    assert sorted(deep) == ["/deep/1.html", "/deep/2.html", "/deep/3.html"]
    site.requests.clear()
    rest = _paths(_list(site, exclude=["/deep/*", "*.pdf"], max_depth=3), site)
    assert sorted(rest) == sorted(EVERYTHING - {"/deep/1.html", "/deep/2.html", "/deep/3.html",
                                                "/files/handbook.pdf"})
    assert not [p for p in site.asked() if p.startswith("/deep/") or p.endswith(".pdf")]


def test_signals_are_stable_and_change_with_the_content(site: Site) -> None:
    first = {e.key: e.signal for e in _list(site, max_depth=3)}
    assert {e.key: e.signal for e in _list(site, max_depth=3)} == first
    site.write("a.html", '<html><body><p>Page A, revised</p><a href="b.html">B</a></body></html>')
    write_pdf(site.root / "files" / "handbook.pdf", [["Travel handbook", "Trains below 800 km."]])
    again = {e.key: e.signal for e in _list(site, max_depth=3)}
    assert again.keys() == first.keys()
    changed = {key[len(site.url) - 1:] for key in first if first[key] != again[key]}
    # /a.html?print=1 is the same file on this server.
    assert changed == {"/a.html", "/a.html?print=1", "/files/handbook.pdf"}


@pytest.mark.parametrize("validator", ["last-modified", "none"])
def test_without_etags_pages_are_hashed_and_files_use_last_modified_or_their_hash(
    site: Site, validator: str
) -> None:
    site.validator = validator
    site.head_allowed = False  # a server that refuses HEAD is read with GET
    entries = _list(site, max_depth=1)
    by_path = dict(zip(_paths(entries, site), entries, strict=True))
    page = (site.root / "index.html").read_bytes()
    assert by_path["/"].signal == f"sha256:{hashlib.sha256(page).hexdigest()}"
    pdf = by_path["/files/handbook.pdf"].signal
    if validator == "none":
        data = (site.root / "files" / "handbook.pdf").read_bytes()
        assert pdf == f"sha256:{hashlib.sha256(data).hexdigest()}"
    else:
        assert pdf.startswith("last-modified:") and "GMT" in pdf


def test_same_origin_redirects_are_followed_and_others_refused(site: Site) -> None:
    (site.root / "sitemap.xml").unlink()
    site.write("start.html", '<html><body><a href="old.html">old</a> <a href="away.html">away</a> '
                             '<a href="renamed.html">renamed</a> <a href="also-a.html">a</a> '
                             '<a href="a.html">a</a></body></html>')
    site.write("new.html", "<html><body>new</body></html>")
    site.redirects.update({"/old.html": "/new.html", "/renamed.html": "new.html",
                           "/away.html": "http://elsewhere.invalid/", "/also-a.html": "/a.html",
                           "/to-private.html": "/private/secret.html"})
    site.write("start.html", (site.root / "start.html").read_text().replace(
        "</body>", '<a href="to-private.html">p</a></body>'))
    paths = _paths(_list(site, "start.html", max_depth=1), site)
    # Listed under the URL they end at, once, however many URLs lead there.
    assert sorted(paths) == ["/a.html", "/new.html", "/start.html"]
    assert not [p for p in site.asked() if p.startswith("/private/")]
    with pytest.raises(SourceError, match=r"away\.html: redirects off the site"):
        _list(site, "away.html")


def test_fetch_writes_the_bytes(site: Site, tmp_path: Path) -> None:
    entries = {e.display: e for e in _list(site, max_depth=1)}
    with WebConnector(site.url) as web:
        fetched = web.fetch(entries["/files/handbook.pdf"], tmp_path / "scratch")
    assert fetched.path == tmp_path / "scratch" / "handbook.pdf"
    assert fetched.path.read_bytes() == (site.root / "files" / "handbook.pdf").read_bytes()
    assert fetched.principals == ()


@pytest.mark.parametrize("content_length", [True, False])
def test_fetch_refuses_past_max_bytes_and_leaves_no_partial_file(
    site: Site, tmp_path: Path, content_length: bool
) -> None:
    entry = next(e for e in _list(site, max_depth=1) if e.display == "/files/handbook.pdf")
    site.content_length = content_length
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with WebConnector(site.url, max_bytes=200) as web, pytest.raises(TooLarge, match=r"0\.0 MB limit"):
        web.fetch(entry, scratch)
    assert list(scratch.iterdir()) == []


def test_fetch_of_a_page_gone_since_it_was_listed(site: Site, tmp_path: Path) -> None:
    entry = next(e for e in _list(site, max_depth=1) if e.display == "/b.html")
    (site.root / "b.html").unlink()
    with WebConnector(site.url) as web, pytest.raises(UnreadableFile, match="gone since it was listed"):
        web.fetch(entry, tmp_path)
    site.failing.add("/a.html")
    broken = Entry(key=site.url + "a.html", signal="", location=site.url + "a.html",
                   display="/a.html", filename="a.html")
    with WebConnector(site.url) as web, pytest.raises(SourceError, match="HTTP 500"):
        web.fetch(broken, tmp_path)
    elsewhere = Entry(key="http://elsewhere.invalid/x", signal="", location="http://elsewhere.invalid/x",
                      display="/x", filename="x.html")
    with WebConnector(site.url) as web, pytest.raises(UnreadableFile, match="is not on"):
        web.fetch(elsewhere, tmp_path)


def test_fetched_page_parses_with_the_real_parser(site: Site, tmp_path: Path) -> None:
    entry = next(e for e in _list(site, max_depth=0) if e.display == "/")
    with WebConnector(site.url) as web:
        path = web.fetch(entry, tmp_path).path
    text = parse_file(path, max_bytes=10_000_000, max_pages=100).text
    assert "Welcome to the intranet" in text and "canteen opens at half past eleven" in text


def test_a_server_that_is_down_is_a_source_error(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there now
    with WebConnector(f"http://127.0.0.1:{port}/", timeout_s=5) as web, pytest.raises(
        SourceError, match=rf"^http://127\.0\.0\.1:{port}/robots\.txt: connection refused$"
    ):
        list(web.entries())


def test_a_server_error_mid_crawl_stops_the_listing(site: Site) -> None:
    site.failing.add("/b.html")
    with pytest.raises(SourceError, match=rf"^listing incomplete: {site.url}b\.html: HTTP 500"):
        _list(site)
    site.failing = {"/"}
    with pytest.raises(SourceError, match=rf"^{site.url}: HTTP 500"):
        _list(site)
    site.failing = {"/sitemap.xml"}
    with pytest.raises(SourceError, match=r"sitemap\.xml: HTTP 500"):
        _list(site)


def test_start_page_errors_are_source_errors(site: Site) -> None:
    with pytest.raises(SourceError, match=rf"^{site.url}nowhere\.html: HTTP 404"):
        _list(site, "nowhere.html")
    site.auth = ("alice", "s3cret")
    with pytest.raises(SourceError, match="HTTP 401"):
        _list(site)


def test_basic_auth(site: Site) -> None:
    site.auth = ("alice", "s3cret")
    paths = _paths(_list(site, max_depth=3, username="alice", password="s3cret"), site)
    assert sorted(paths) == sorted(EVERYTHING)
    with pytest.raises(SourceError, match="HTTP 401"):
        _list(site, username="alice", password="wrong")


def test_credentials_in_the_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(SourceError) as caught:
        WebConnector("https://alice:s3cret@intranet.example/")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(SourceError, match="not an http"):
        WebConnector("ftp://intranet.example/")


def test_normalise() -> None:
    base = "http://Intranet.Example:80/docs/guide.html"
    assert normalise("#top", base) == "http://intranet.example/docs/guide.html"
    assert normalise("../a b.pdf?x=1&y=ä#p", base) == "http://intranet.example/a%20b.pdf?x=1&y=%C3%A4"
    assert normalise("a%20b.pdf", "http://intranet.example/") == "http://intranet.example/a%20b.pdf"
    assert normalise("HTTPS://intranet.example:443/x/./y/../z") == "https://intranet.example/x/z"
    assert normalise("http://bob:pw@intranet.example:8080") == "http://intranet.example:8080/"
    assert normalise("mailto:hr@intranet.example", base) is None
    assert normalise("javascript:void(0)", base) is None
    assert normalise("http://[::1]:8080/a", base) == "http://[::1]:8080/a"
    assert normalise("http://intranet.example:99999/", base) is None


@pytest.fixture
def tls_site(tmp_path: Path) -> Iterator[tuple[Site, Path]]:
    """The site over HTTPS with a self-signed certificate for 127.0.0.1."""
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = tmp_path / "cert.pem"
    key_path = tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    served = Site(tmp_path / "site")
    served.root.mkdir()
    for running in _serve(served, wrap=context):
        _build(running)
        yield running, cert_path


def test_tls_is_verified_against_the_configured_ca(tls_site: tuple[Site, Path]) -> None:
    site, cert = tls_site
    with pytest.raises(SourceError, match="TLS certificate verify failed"):
        _list(site)
    paths = _paths(_list(site, max_depth=3, verify=str(cert)), site)
    assert sorted(paths) == sorted(EVERYTHING)
    with pytest.raises(SourceError, match="CA certificates"):
        WebConnector(site.url, verify=str(cert.parent / "missing.pem"))
