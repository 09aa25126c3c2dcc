"""What a website says about crawling it: its robots.txt, and the page URLs its sitemaps
name as further starting points for the crawl.

Both are read strictly: a robots.txt or sitemap that cannot be read now (a server error,
refused credentials) raises SourceError, since guessing either way would list the wrong
pages, and a listing that misses pages deletes their documents.
"""

from __future__ import annotations

import logging
import zlib
from collections import deque
from collections.abc import Callable
from contextlib import closing
from urllib.robotparser import RobotFileParser

from lxml import etree

from core.errors import SourceError
from ingest.sources.web_http import SITE_FAILURES, Refused, SiteClient, mb, status_line
from ingest.sources.web_urls import normalise

log = logging.getLogger(__name__)

# RFC 9309 asks crawlers to read at least 500 KiB of a robots.txt.
_MAX_ROBOTS_BYTES = 512 * 1024
# Sitemap documents read per listing (an index names others), against an index loop.
_MAX_SITEMAPS = 100


def read_robots(http: SiteClient, root: str) -> RobotFileParser:
    """The rules of the site whose root URL (ending in "/") is ``root``."""
    url = root + "robots.txt"
    robots = RobotFileParser(url)
    try:
        _, response = http.open("GET", url, http.same_origin)
    except Refused:
        robots.parse([])  # moved off the site: not this site's rules; none apply
        return robots
    with closing(response):
        status = response.status_code
        if status in (401, 403) or status in SITE_FAILURES or status >= 500:
            # Guessing "allow all" here could list what the site forbids, and
            # "disallow all" would list nothing: every document would be deleted.
            raise SourceError(f"{url}: {status_line(response)}")
        body = (http.read(url, response, _MAX_ROBOTS_BYTES, truncate=True) or b""
                if status < 300 else b"")
    robots.parse(body.decode("utf-8", errors="replace").splitlines())
    return robots


def sitemap_urls(http: SiteClient, root: str, robots: RobotFileParser,
                 allowed: Callable[[str], bool], *, max_pages: int,
                 max_bytes: int) -> tuple[list[str], set[str]]:
    """The page URLs the origin's sitemaps name that the crawl may visit, in order, and
    the sitemaps read: /sitemap.xml, those robots.txt names, those an index names."""
    named = (normalise(u) for u in robots.site_maps() or ())
    todo = deque([root + "sitemap.xml",
                  *(u for u in named if u is not None and http.same_origin(u))])
    read: set[str] = set()
    found: dict[str, None] = {}
    while todo and len(read) < _MAX_SITEMAPS and len(found) < max_pages:
        url = todo.popleft()
        if url in read:
            continue
        read.add(url)
        pages, indexed = _sitemap(http, url, max_bytes)
        for page in pages:
            if allowed(page):
                found.setdefault(page)
        todo.extend(indexed)
    return list(found)[:max_pages], read


def _sitemap(http: SiteClient, url: str, max_bytes: int) -> tuple[list[str], list[str]]:
    """A sitemap's page URLs and, for a sitemap index, the sitemaps it names."""
    try:
        _, response = http.open("GET", url, http.same_origin)
    except Refused:
        return [], []
    with closing(response):
        status = response.status_code
        if status in SITE_FAILURES or status >= 500:
            raise SourceError(f"listing incomplete: {url}: {status_line(response)}")
        if status >= 300:
            return [], []  # no sitemap there
        body = http.read(url, response, max_bytes, truncate=False)
    if body is None:
        raise SourceError(f"listing incomplete: {url}: over the {mb(max_bytes)} limit")
    if body[:2] == b"\x1f\x8b":
        inflate = zlib.decompressobj(wbits=31)
        try:
            body = inflate.decompress(body, max_bytes + 1)
        except zlib.error:
            body = b""
    try:
        root = etree.fromstring(body, etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False))
    except etree.XMLSyntaxError:
        root = None
    kind = etree.QName(root).localname if root is not None else None
    if kind not in ("urlset", "sitemapindex") or root is None:
        # /sitemap.xml is only a guess: an intranet may answer it with a page of its own.
        log.info("%s: not a sitemap, ignored", url)
        return [], []
    locs = root.xpath("./*[local-name()='url' or local-name()='sitemap']"
                      "/*[local-name()='loc']/text()")
    urls = [u for u in (normalise(str(loc)) for loc in locs)
            if u is not None and http.same_origin(u)]
    return (urls, []) if kind == "urlset" else ([], urls)
