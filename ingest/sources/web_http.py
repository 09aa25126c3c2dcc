"""HTTP for the website connector, to one origin only: requests, redirects followed by
hand and only within the origin, bodies read up to a limit, and failures worded for a
job's reason.

The source's credentials go with every request, so no request may leave the origin:
httpx's own redirect following would take them wherever a page points.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx

from core.errors import SourceError, one_line
from ingest.sources.web_urls import normalise, origin

_MAX_REDIRECTS = 10
_HTML_TYPES = {"text/html", "application/xhtml+xml"}
# Statuses that say the whole site, not one page, cannot be read now.
SITE_FAILURES = {401, 407, 408, 429}


class Refused(Exception):
    """A redirect to where the crawl may not go (another origin, a forbidden path, a loop)."""


class SiteClient:
    """One origin's HTTP client, with basic auth when a username is given.

    ``verify``: whether to check the server's TLS certificate, or the path of a CA bundle
    (a file) or of a folder of CA certificates to check it against.
    """

    def __init__(self, start: str, *, username: str | None, password: str | None,
                 verify: bool | str, timeout_s: float, user_agent: str) -> None:
        self.origin = origin(start)
        self.timeout_s = timeout_s
        self._client = httpx.Client(
            auth=httpx.BasicAuth(username, password or "") if username else None,
            verify=_tls(verify), timeout=httpx.Timeout(timeout_s),
            # Redirects are followed by hand, only within the origin (see open).
            follow_redirects=False,
            # No proxy, netrc or CA bundle from the environment: what is configured here
            # is all that decides where requests go and which servers are trusted.
            trust_env=False,
            headers={"User-Agent": user_agent},
        )

    def close(self) -> None:
        self._client.close()

    def same_origin(self, url: str) -> bool:
        return origin(url) == self.origin

    def why(self, exc: BaseException) -> str:
        return _why(exc, self.timeout_s)

    def open(self, method: str, url: str,
             allowed: Callable[[str], bool]) -> tuple[str, httpx.Response]:
        """The streamed response to ``method url`` and the URL it came from, after the
        redirects ``allowed`` lets it follow; the caller closes it. Raises Refused for a
        redirect it may not follow, SourceError when the server cannot be reached."""
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                request = self._client.build_request(method, url)
                response = self._client.send(request, stream=True)
            except httpx.InvalidURL as exc:
                raise Refused(f"not a URL that can be read ({one_line(exc)})") from exc
            except httpx.RequestError as exc:
                raise SourceError(f"{url}: {self.why(exc)}") from exc
            if not response.is_redirect:
                return url, response
            response.close()
            target = normalise(response.headers["location"], url)
            if target is None or not self.same_origin(target):
                raise Refused(f"redirects off the site{f' to {target}' if target else ''}")
            if not allowed(target):
                raise Refused(f"redirects to {target}, which the crawl may not visit")
            url = target
        raise Refused(f"more than {_MAX_REDIRECTS} redirects")

    def read(self, url: str, response: httpx.Response, limit: int, *,
             truncate: bool) -> bytes | None:
        """The body, at most ``limit`` bytes; past it, the first ``limit`` bytes when
        ``truncate``, else None."""
        length = content_length(response)
        if length is not None and length > limit and not truncate:
            return None
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    if not truncate:
                        return None
                    break
        except httpx.RequestError as exc:
            raise SourceError(f"listing incomplete: {url}: {self.why(exc)}") from exc
        return b"".join(chunks)[:limit]

    def digest(self, url: str, response: httpx.Response, limit: int) -> str:
        """The body's SHA-256 as a change signal; past ``limit``, an over-limit one."""
        length = content_length(response)
        if length is not None and length > limit:
            return over_limit(response)
        digest = hashlib.sha256()
        size = 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    return over_limit(response)
                digest.update(chunk)
        except httpx.RequestError as exc:
            raise SourceError(f"listing incomplete: {url}: {self.why(exc)}") from exc
        return f"sha256:{digest.hexdigest()}"


def content_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_html(response: httpx.Response) -> bool:
    return content_type(response) in _HTML_TYPES


def etag_signal(response: httpx.Response) -> str | None:
    etag = response.headers.get("etag", "").strip()
    return f"etag:{etag}" if etag else None


def validator_signal(response: httpx.Response) -> str | None:
    """What tells a change of a file without its body: its ETag, else its Last-Modified."""
    modified = response.headers.get("last-modified", "").strip()
    return etag_signal(response) or (f"last-modified:{modified}" if modified else None)


def sha256_signal(body: bytes) -> str:
    return f"sha256:{hashlib.sha256(body).hexdigest()}"


def content_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def over_limit(response: httpx.Response) -> str:
    # Fetching it fails as too large; its length, when known, tells when that may change.
    return f"over-limit:{response.headers.get('content-length', '')}"


def status_line(response: httpx.Response) -> str:
    return f"HTTP {response.status_code} {response.reason_phrase}".rstrip()


def mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _why(exc: BaseException, timeout_s: float) -> str:
    """Why a request failed, as a reason an admin can act on."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verify failed: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed: {cause.reason or one_line(cause)}"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return f"host not found ({cause.strerror})"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {timeout_s:g} s"
    text = one_line(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"TLS certificate verify failed ({text})"
    return text


def _tls(verify: bool | str) -> bool | ssl.SSLContext:
    """``verify`` as httpx takes it: a path becomes a context trusting the CAs there."""
    if isinstance(verify, bool):
        return verify
    path = Path(verify)
    try:
        if path.is_dir():
            return ssl.create_default_context(capath=str(path))
        return ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise SourceError(f"CA certificates {verify}: {one_line(exc)}") from exc

