"""An intranet website as a source: its pages and the files they link to, found by crawling.

The crawl starts at the source's URL and stays on its origin (scheme, host and port): links
elsewhere are never followed, redirects elsewhere are refused, so the source's credentials
go to no other server. It reads robots.txt first and lists nothing it forbids to our user
agent, takes the URLs of the origin's sitemaps as further starting points, and follows
``<a href>`` links breadth-first, up to ``max_depth`` hops from a starting point and
``max_pages`` entries in all. Files linked from pages (PDFs, office files) are entries too,
read with a HEAD request; links to files no parser reads (an installer, a video) are not.

Change signals: a page's ETag, else the SHA-256 of its body (fetched anyway for its links;
a dynamic page's Last-Modified is often "now", which would re-embed it on every sync); a
file's ETag, else its Last-Modified, else the SHA-256 of its body.

A listing that cannot be complete raises :class:`core.errors.SourceError`, so the sync
deletes nothing: the site is down, the credentials are refused, TLS fails, robots.txt or a
sitemap cannot be read, or a page answers with a server error. A dead link (404, 410) or a
page we may not read (403) is not an entry, and a later sync deletes what it held.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from core.errors import SourceError, TooLarge, UnreadableFile
from ingest.sources.base import Entry, Fetched
from ingest.sources.web_http import (
    SITE_FAILURES,
    Refused,
    SiteClient,
    content_length,
    content_type,
    etag_signal,
    is_html,
    mb,
    over_limit,
    sha256_signal,
    status_line,
    validator_signal,
)
from ingest.sources.web_robots import read_robots, sitemap_urls
from ingest.sources.web_urls import entry_filename, looks_like_file, normalise, page_links, parseable

# Re-exported: callers and tests know the URL normaliser by this module.
__all__ = ["WebConnector", "normalise"]

log = logging.getLogger(__name__)

# A HEAD answered with one of these may be refused rather than failed: ask again with GET.
_HEAD_REFUSED = {400, 403, 405, 406, 501}
_GONE = {404, 410}


@dataclass(frozen=True, slots=True)
class _Visit:
    entry: Entry | None  # None: read for its links only, or not something a parser reads
    links: tuple[str, ...] = ()


class WebConnector:
    """One intranet site, read over HTTP(S) with basic auth when a username is given.

    ``include`` and ``exclude``: glob patterns (fnmatch) on a URL's path, such as
    "/docs/*" ("*" matches "/" too). A URL outside them is neither listed nor requested;
    the start URL is always read for its links, and listed only when inside them.
    ``verify``: whether to check the server's TLS certificate, or the path of a CA bundle
    (a file) or of a folder of CA certificates to check it against.
    """

    def __init__(
        self, start_url: str, *, include: Sequence[str] = (), exclude: Sequence[str] = (),
        max_pages: int = 1000, max_depth: int = 5, max_bytes: int = 100 * 2**20,
        timeout_s: float = 30.0, username: str | None = None, password: str | None = None,
        verify: bool | str = True, user_agent: str = "enclave-sync",
    ) -> None:
        try:
            userinfo = urlsplit(start_url.strip()).username is not None
        except ValueError:
            userinfo = False
        if userinfo:
            # Never echo this URL: it holds a password.
            raise SourceError("a website's credentials belong in its username and password, "
                              "not in its URL")
        start = normalise(start_url)
        if start is None:
            raise SourceError(f"{start_url}: not an http:// or https:// URL")
        if max_pages < 1 or max_depth < 0 or max_bytes < 1 or timeout_s <= 0:
            raise SourceError("max_pages, max_bytes and timeout_s must be positive and "
                              "max_depth at least 0")
        self.start_url = start
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.max_pages = max_pages
        self.max_depth = max_depth
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.user_agent = user_agent
        self._root = urlunsplit((*urlsplit(start)[:2], "/", "", ""))
        self._site = SiteClient(start, username=username, password=password, verify=verify,
                                timeout_s=timeout_s, user_agent=user_agent)

    def __enter__(self) -> WebConnector:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._site.close()

    # Listing

    def entries(self) -> Iterator[Entry]:
        robots = read_robots(self._site, self._root)

        def allowed(url: str) -> bool:
            return (self._site.same_origin(url) and robots.can_fetch(self.user_agent, url)
                    and self._in_scope(url))

        if not robots.can_fetch(self.user_agent, self.start_url):
            # Listed as empty, the whole site would be deleted: say why instead.
            raise SourceError(f"{self.start_url}: robots.txt disallows it for {self.user_agent}")
        sitemap_pages, sitemaps = sitemap_urls(self._site, self._root, robots, allowed,
                                               max_pages=self.max_pages,
                                               max_bytes=self.max_bytes)
        queue = deque((url, 0) for url in dict.fromkeys([self.start_url, *sitemap_pages]))
        # Every URL ever queued or reached by a redirect: none is visited twice, so link
        # loops end. robots.txt and the sitemaps are the crawl's own, never entries.
        seen = {url for url, _ in queue} | {self._root + "robots.txt"} | sitemaps
        listed = 0
        while queue:
            url, depth = queue.popleft()
            visit = self._visit(url, depth, start=url == self.start_url,
                                allowed=allowed, seen=seen)
            if depth < self.max_depth:
                for link in visit.links:
                    if link not in seen and allowed(link):
                        seen.add(link)
                        queue.append((link, depth + 1))
            if visit.entry is None:
                continue
            # The start URL (or where it redirects) is read for its links even when
            # include/exclude leave it out; every other URL was allowed before it was read.
            if allowed(visit.entry.key):
                yield visit.entry
                listed += 1
                if listed >= self.max_pages:
                    if queue:
                        log.warning("%s: stopped listing at max_pages=%d", self.start_url,
                                    self.max_pages)
                    return

    def _in_scope(self, url: str) -> bool:
        path = urlsplit(url).path
        if self.include and not any(fnmatchcase(path, p) for p in self.include):
            return False
        return not any(fnmatchcase(path, p) for p in self.exclude)

    def _visit(self, url: str, depth: int, *, start: bool, allowed: Callable[[str], bool],
               seen: set[str]) -> _Visit:
        """One URL read: its entry (None when it is not one) and the links on it."""
        # A file by its extension is read with HEAD; a page, or a file we cannot tell,
        # with GET, its body read only when it turns out to be a page.
        method = "HEAD" if looks_like_file(url) else "GET"
        while True:
            try:
                final, response = self._site.open(
                    method, url, allowed if not start else self._site.same_origin)
            except Refused as exc:
                if start:
                    raise SourceError(f"{url}: {exc}") from exc
                log.info("%s: %s; skipped", url, exc)
                return _Visit(None)
            except SourceError as exc:
                if start:
                    raise
                raise SourceError(f"listing incomplete: {exc}") from exc
            if method == "HEAD" and (
                response.status_code in _HEAD_REFUSED
                or (response.is_success and (is_html(response) or not validator_signal(response)))
            ):
                # HEAD refused, or a page after all (read it for links), or nothing to tell
                # a change by but the body.
                response.close()
                method = "GET"
                continue
            break
        with closing(response):
            if final != url:
                if final in seen:
                    return _Visit(None)  # reached by its own URL, before or later
                seen.add(final)
            status = response.status_code
            if not response.is_success:
                if start:
                    raise SourceError(f"{url}: {status_line(response)}")
                if status in SITE_FAILURES or status >= 500:
                    raise SourceError(f"listing incomplete: {url}: {status_line(response)}")
                log.info("%s: %s; skipped", url, status_line(response))
                return _Visit(None)
            html = method == "GET" and is_html(response)
            filename = entry_filename(final, content_type(response), html)
            if not html and not parseable(filename):
                return _Visit(None)
            links: tuple[str, ...] = ()
            if html:
                body = self._site.read(final, response, self.max_bytes, truncate=False)
                if body is None:
                    signal = over_limit(response)
                else:
                    signal = etag_signal(response) or sha256_signal(body)
                    if depth < self.max_depth:
                        links = page_links(body, final, response.charset_encoding)
            elif (validator := validator_signal(response)) is not None:
                signal = validator
            else:
                signal = self._site.digest(final, response, self.max_bytes)
        return _Visit(_entry(final, filename, signal), links)

    # Fetching

    def fetch(self, entry: Entry, folder: Path) -> Fetched:
        url = entry.location
        if normalise(url) != url or not self._site.same_origin(url):
            # The credentials go to this site only, whatever a stored entry says.
            raise UnreadableFile(f"{url} is not on {self.start_url}")
        target = folder / (Path(entry.filename).name or "document")
        try:
            _, response = self._site.open("GET", url, self._site.same_origin)
        except Refused as exc:
            raise UnreadableFile(f"{exc} since it was listed") from exc
        with closing(response):
            status = response.status_code
            if status in _GONE:
                raise UnreadableFile("gone since it was listed")
            if status in SITE_FAILURES or status >= 500:
                raise SourceError(f"{url}: {status_line(response)}")
            if not response.is_success:
                raise UnreadableFile(status_line(response))
            length = content_length(response)
            if length is not None and length > self.max_bytes:
                raise TooLarge(f"{length / 1e6:.1f} MB is over the {mb(self.max_bytes)} limit")
            folder.mkdir(parents=True, exist_ok=True)
            size = 0
            try:
                with target.open("wb") as out:
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise TooLarge(f"more than the {mb(self.max_bytes)} limit")
                        out.write(chunk)
            except httpx.RequestError as exc:
                target.unlink(missing_ok=True)
                raise SourceError(f"{url}: {self._site.why(exc)}") from exc
            except BaseException:
                target.unlink(missing_ok=True)  # no partial file is left for a parser
                raise
        return Fetched(target)


def _entry(url: str, filename: str, signal: str) -> Entry:
    parts = urlsplit(url)
    display = unquote(parts.path) + (f"?{parts.query}" if parts.query else "")
    return Entry(key=url, signal=signal, location=url, display=display, filename=filename)

