"""URLs as the website connector sees them: one spelling for each, the links a page
holds, and the file name (so the parser) a URL's entry gets.

One spelling matters because the crawl remembers where it has been by URL, and a sync
matches entries by URL: "a b.pdf" and "a%20b.pdf", or "HTTP://Host:80/x" and
"http://host/x", must not be two documents.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path
from urllib.parse import quote, unquote, urldefrag, urljoin, urlsplit, urlunsplit

from lxml import etree
from lxml import html as lxml_html

from ingest.archives import is_archive
from ingest.parse import supported_extensions

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters kept as they are in a normalised path and query: the reserved ones that carry
# meaning, and "%" so that existing escapes are not escaped twice. Anything else (a space,
# a non-ASCII letter) is percent-encoded, so "a b.pdf" and "a%20b.pdf" are one URL.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = _PATH_SAFE + "?"

# Content types whose extension the parser goes by, where the URL's own does not say.
_TYPE_EXTENSIONS = {
    "application/pdf": ".pdf",
    "application/msword": ".doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.ms-excel.sheet.macroenabled.12": ".xlsm",
    "application/vnd.ms-powerpoint": ".ppt",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "application/vnd.oasis.opendocument.text": ".odt",
    "application/vnd.oasis.opendocument.spreadsheet": ".ods",
    "application/vnd.oasis.opendocument.presentation": ".odp",
    "application/rtf": ".rtf",
    "text/rtf": ".rtf",
    "application/epub+zip": ".epub",
    "message/rfc822": ".eml",
    "application/vnd.ms-outlook": ".msg",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/csv": ".csv",
    "text/tab-separated-values": ".tsv",
    "application/json": ".json",
    "application/x-ndjson": ".ndjson",
    "application/xml": ".xml",
    "text/xml": ".xml",
    "application/yaml": ".yaml",
    "application/x-yaml": ".yaml",
    "text/yaml": ".yaml",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/tiff": ".tiff",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/webp": ".webp",
    "image/heic": ".heic",
    "application/zip": ".zip",
    "application/x-tar": ".tar",
}


def normalise(href: str, base: str = "") -> str | None:
    """``href`` resolved against ``base`` as the one URL that names it: no fragment, no
    credentials, no default port, lowercase scheme and host, dot segments resolved, unsafe
    characters percent-encoded; the query kept. None: not an http(s) URL."""
    try:
        parts = urlsplit(urldefrag(urljoin(base, href.strip())).url)
        scheme = parts.scheme.lower()
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = quote(_remove_dot_segments(parts.path or "/"), safe=_PATH_SAFE)
    query = quote(parts.query, safe=_QUERY_SAFE)
    return urlunsplit((scheme, netloc, path, query, ""))


def _remove_dot_segments(path: str) -> str:
    # urljoin resolves "../" in a relative link but leaves an absolute URL's as it is.
    if "." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment in (".", ".."):
            if segment == ".." and len(out) > 1:
                out.pop()
            if last:
                out.append("")
            continue
        out.append(segment)
    return "/".join(out) if out != [""] else "/"


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or ""), parts.port or _DEFAULT_PORTS.get(scheme, 0)


def page_links(body: bytes, url: str, charset: str | None) -> tuple[str, ...]:
    """The http(s) URLs a page's <a> and <area> elements link to, normalised, in order."""
    try:
        parser = lxml_html.HTMLParser(encoding=charset) if charset else None
        root = lxml_html.document_fromstring(body, parser=parser)
    except (etree.ParserError, etree.XMLSyntaxError, LookupError, ValueError):
        return ()  # empty, or not HTML after all: no links
    base = url
    for element in root.iter("base"):
        if href := element.get("href"):
            base = urljoin(url, href.strip())
            break
    found: dict[str, None] = {}
    for element in root.iter("a", "area"):
        href = element.get("href")
        if href and (link := normalise(href, base)) is not None:
            found.setdefault(link)
    return tuple(found)


def looks_like_file(url: str) -> bool:
    name = _last_segment(url)
    ext = Path(name).suffix.lower()
    return (ext in supported_extensions() and ext not in (".html", ".htm", ".xhtml")) \
        or is_archive(name)


def parseable(filename: str) -> bool:
    return Path(filename).suffix.lower() in supported_extensions() or is_archive(filename)


def _last_segment(url: str) -> str:
    return unquote(urlsplit(url).path).rstrip("/").rsplit("/", 1)[-1]


def entry_filename(url: str, content_type: str, html: bool) -> str:
    """A safe file name whose extension picks the parser: ".html" for a page; for a file,
    its URL's extension when a parser reads that, else one for its Content-Type."""
    segment = _last_segment(url)
    if is_archive(segment) and not html:
        stem, ext = segment, ""
    else:
        suffix = Path(segment).suffix
        stem = segment[: -len(suffix)] if suffix else segment
        if html:
            ext = ".html"
        elif suffix.lower() in supported_extensions():
            ext = suffix.lower()
        else:
            ext = (_TYPE_EXTENSIONS.get(content_type)
                   or mimetypes.guess_extension(content_type or "application/octet-stream")
                   or suffix.lower() or ".bin")
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._")[:120] or ("index" if html else "file")
    return stem + ext

