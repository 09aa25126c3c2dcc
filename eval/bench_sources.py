"""``enclave bench sources``: how long a source's sync takes against a real server on
loopback, the first time, unchanged, and after a few documents changed.

Each kind gets its own server and a fresh data dir: a folder (a temp folder), an SMB share
(a real smbd, :mod:`eval.servers.samba`; it needs root), an IMAP mailbox (a real Dovecot,
:mod:`eval.servers.dovecot`, messages dropped into its Maildir) and an intranet site (a
``ThreadingHTTPServer`` whose index page links to every page). Each holds ``documents``
small memos, a few sentences of distinct text each. The source is synced through the real
pipeline (inline jobs, SQLite, the real embedder and store) three times: first (every memo
ingested), again with nothing changed (every memo ``unchanged``: the figure that matters
is how small that sync is next to the first), and after ``changed`` memos were rewritten
(a mailbox's messages never change: ``changed`` new ones are delivered instead). Each
sync's item counts are checked against what it must have done.

The embedding model is loaded, and one memo of each kind ingested, before anything is
timed: start-up is not sync.
"""

from __future__ import annotations

import functools
import random
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import InputError
from core.jobs import DONE, ITEM_DONE, UNCHANGED
from core.ports import Embedder
from core.settings import JobsSettings, Settings
from core.sources import KINDS, PUBLIC, Source

if TYPE_CHECKING:
    from core.container import Container

# Synced by each kind's source, in this order.
SYNCS = ("first", "unchanged", "changed")
# The goal for an unchanged re-sync's time, as a share of the first sync's.
UNCHANGED_GOAL = 0.05
_NAME = "bench"
_PUBLIC_MAPPING = {"other": (PUBLIC,)}

_TEAMS = ("finance", "engineering", "facilities", "legal", "sales", "support", "research",
          "security", "marketing", "procurement")
_CITIES = ("Lisbon", "Porto", "Madrid", "Berlin", "Oslo", "Dublin", "Prague", "Vienna",
           "Tallinn", "Ghent", "Turin")
_TOPICS = ("the quarterly budget review", "the new badge readers", "the parking rota",
           "the office move", "the supplier audit", "the holiday calendar",
           "the laptop refresh", "the fire drill", "the canteen menu", "the travel policy",
           "the server room cooling", "the onboarding checklist")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")


class Skipped(Exception):
    """A kind that cannot run here (no root for smbd, a server not installed): why."""


@dataclass
class _Site:
    """A kind's server, ready: the source to add, how to change some of its memos, and
    whether that adds entries (new messages) rather than changing them."""

    source: Source
    change: Callable[[Sequence[int]], None]
    adds: bool = False


def memo(n: int, revision: int = 0) -> tuple[str, str]:
    """Memo ``n`` (its ``revision``): a title and a few sentences no other memo shares."""
    r = random.Random(n * 7 + revision * 100_003)
    team, city, topic, day = (r.choice(_TEAMS), r.choice(_CITIES), r.choice(_TOPICS),
                              r.choice(_DAYS))
    title = f"Memo {n:05d}" + (f", revision {revision}" if revision else "")
    body = (f"{title}: the {team} team in {city} meets about {topic} on {day} at "
            f"{r.randint(8, 17)}:{r.choice(('00', '15', '30', '45'))} in room {r.randint(100, 999)}. "
            f"Bring the figures for reference {n * 7919 % 100_003}-{revision}; "
            f"{r.randint(2, 40)} people are expected. "
            f"Questions go to desk {r.randint(1000, 9999)} before {day} morning.")
    return title, body


def bench_sources(
    documents: int = 1000,
    kinds: Sequence[str] = KINDS,
    changed: int = 10,
    embedder: Embedder | None = None,
    on_progress: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Per kind: the three syncs' seconds and documents/s, the unchanged re-sync's time as a
    share of the first's, and whether each sync's counts were right; or why it was skipped."""
    if documents < 1 or not 1 <= changed <= documents:
        raise InputError("documents must be at least 1 and changed between 1 and documents")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise InputError(f"unknown source kind(s) {unknown}: {', '.join(KINDS)}")
    result: dict[str, Any] = {"documents": documents, "changed": changed,
                              "unchanged_goal": UNCHANGED_GOAL, "kinds": {}}
    with tempfile.TemporaryDirectory(prefix="enclave-bench-sources-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)  # smbd and Dovecot's own users reach their folders under it
        started = time.perf_counter()
        embedder = _warm_up(base / "warm-up", embedder)
        result["warm_up_s"] = round(time.perf_counter() - started, 1)
        for kind in kinds:
            if on_progress:
                on_progress(kind, "starting")
            try:
                result["kinds"][kind] = _bench_kind(kind, base / kind, documents, changed,
                                                    embedder, on_progress)
            except Skipped as exc:
                result["kinds"][kind] = {"skipped": str(exc)}
    result["ok"] = all(r.get("ok", True) for r in result["kinds"].values())
    return result


def _bench_kind(kind: str, folder: Path, documents: int, changed: int, embedder: Embedder,
                on_progress: Callable[[str, str], None] | None) -> dict[str, Any]:
    from core.container import Container

    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    starts: dict[str, Callable[[Path, int], AbstractContextManager[_Site]]] = {
        "folder": _folder, "smb": _smb, "imap": _imap, "web": _web}
    with ExitStack() as stack:
        site = stack.enter_context(starts[kind](folder, documents))  # Skipped: not here
        container = Container(_settings(folder / "data"), embedder=embedder)
        stack.callback(container.close)
        connections = container.job_runner().connections
        if connections is not None:  # those a sync keeps open close before their server stops
            stack.callback(connections.close)
        container.sources.add(site.source)
        runs: dict[str, dict[str, Any]] = {}
        for sync in SYNCS:
            if sync == "changed":
                site.change(range(changed))
            if on_progress:
                on_progress(kind, sync)
            runs[sync] = _sync(container, documents + (changed if site.adds and
                                                       sync == "changed" else 0))
    first, unchanged, after = runs["first"], runs["unchanged"], runs["changed"]
    checks = {
        "first_all_done": first["counts"] == {ITEM_DONE: documents},
        "unchanged_all_unchanged": unchanged["counts"] == {UNCHANGED: documents},
        f"changed_{changed}_done": after["counts"].get(ITEM_DONE) == changed
        and after["counts"].get(UNCHANGED, 0) == documents - (0 if site.adds else changed)
        and sum(after["counts"].values()) == documents + (changed if site.adds else 0),
    }
    ratio = unchanged["seconds"] / first["seconds"] if first["seconds"] else None
    return {
        "documents": documents, **runs,
        "unchanged_vs_first": round(ratio, 4) if ratio is not None else None,
        "unchanged_under_goal": ratio is not None and ratio < UNCHANGED_GOAL,
        "changes": "new messages" if site.adds else "rewritten documents",
        "checks": checks, "ok": all(checks.values()) and all(r["error"] is None for r in
                                                              runs.values()),
    }


def _sync(container: Container, listed: int) -> dict[str, Any]:
    started = time.perf_counter()
    job = container.job_runner().sync_source(_NAME, owner="bench")
    seconds = time.perf_counter() - started
    job = container.jobs.get(job.job_id)
    error = job.error if job.status == DONE else f"job {job.status}: {job.error}"
    return {"seconds": round(seconds, 3),
            "documents_per_s": round(listed / seconds, 1) if seconds else None,
            "counts": {k: v for k, v in sorted(job.counts.items()) if v}, "error": error}


def _settings(data_dir: Path) -> Settings:
    """The settings in force (ENCLAVE_*), with a data dir of the benchmark's and inline jobs."""
    return Settings(data_dir=data_dir, jobs=JobsSettings(mode="inline"))


def _warm_up(folder: Path, embedder: Embedder | None) -> Embedder:
    """The model loaded and one memo of each format (text, page, mail) ingested through a
    folder source: imports and first calls, paid before anything is timed."""
    from core.container import Container

    docs = folder / "docs"
    docs.mkdir(parents=True)
    title, body = memo(0)
    (docs / "memo.txt").write_text(body, encoding="utf-8")
    (docs / "memo.html").write_text(_page(title, body), encoding="utf-8")
    (docs / "memo.eml").write_bytes(_mail(0, 0))
    for path in docs.iterdir():
        path.chmod(0o644)
    container = Container(_settings(folder / "data"), embedder=embedder)
    try:
        loaded = container.embedder
        loaded.embed(["warm up"])
        container.sources.add(Source(name=_NAME, kind="folder", location=str(docs),
                                     mapping=_PUBLIC_MAPPING))
        container.job_runner().sync_source(_NAME, owner="bench")
        return loaded
    finally:
        container.close()


# -- the kinds' servers, each with its memos ------------------------------------------------


def _write_files(root: Path, count: int, suffix: str = ".txt") -> None:
    for n in range(count):
        _write_file(root, n, 0, suffix)


def _write_file(root: Path, n: int, revision: int, suffix: str = ".txt") -> None:
    title, body = memo(n, revision)
    path = root / f"memo-{n:05d}{suffix}"
    path.write_text(_page(title, body) if suffix == ".html" else body, encoding="utf-8")
    path.chmod(0o644)  # world-readable: "other", mapped to everyone


def _rewrite(root: Path, suffix: str = ".txt") -> Callable[[Sequence[int]], None]:
    def change(numbers: Sequence[int]) -> None:
        for n in numbers:
            _write_file(root, n, 1, suffix)
    return change


@contextmanager
def _folder(folder: Path, documents: int) -> Iterator[_Site]:
    root = folder / "docs"
    root.mkdir(mode=0o755)
    _write_files(root, documents)
    yield _Site(Source(name=_NAME, kind="folder", location=str(root), mapping=_PUBLIC_MAPPING),
                _rewrite(root))


@contextmanager
def _smb(folder: Path, documents: int) -> Iterator[_Site]:
    from eval.servers import samba

    if (why := samba.missing()) is not None:
        raise Skipped(why)
    secret = _secret(folder, samba.PASSWORD)
    with ExitStack() as stack:
        try:
            smb = stack.enter_context(samba.running_smbd())
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            raise Skipped(f"smbd did not start: {exc}") from exc
        _write_files(smb.root, documents)
        yield _Site(Source(name=_NAME, kind="smb", location=smb.url(), username=smb.username,
                           credentials=f"file:{secret}", mapping=_PUBLIC_MAPPING),
                    _rewrite(smb.root))


@contextmanager
def _imap(folder: Path, documents: int) -> Iterator[_Site]:
    from eval.servers import dovecot

    if dovecot.DOVECOT is None:
        raise Skipped("Dovecot is not installed (apt-get install dovecot-imapd)")
    secret = _secret(folder, dovecot.PASSWORD)
    try:
        server = dovecot.Dovecot().start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        raise Skipped(f"dovecot did not start: {exc}") from exc
    try:
        server.drop_many([_mail(n, 0) for n in range(documents)])

        def deliver(numbers: Sequence[int]) -> None:
            server.drop_many([_mail(documents + n, 0) for n in numbers])

        yield _Site(Source(name=_NAME, kind="imap", location=server.url(),
                           username=dovecot.USER, credentials=f"file:{secret}",
                           groups=(PUBLIC,)), deliver, adds=True)
    finally:
        server.stop()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _web(folder: Path, documents: int) -> Iterator[_Site]:
    root = folder / "site"
    root.mkdir(mode=0o755)
    _write_files(root, documents, ".html")
    links = "".join(f'<li><a href="memo-{n:05d}.html">Memo {n:05d}</a></li>'
                    for n in range(documents))
    (root / "index.html").write_text(
        f"<html><head><title>Memos</title></head><body><h1>Memos</h1><ul>{links}</ul>"
        "</body></html>", encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # The index is read for its links only: the memos are the documents.
        yield _Site(Source(name=_NAME, kind="web",
                           location=f"http://127.0.0.1:{server.server_address[1]}/index.html",
                           include=("/memo-*",), groups=(PUBLIC,),
                           options={"max_pages": documents + 10}),
                    _rewrite(root, ".html"))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _page(title: str, body: str) -> str:
    return (f"<html><head><title>{title}</title></head><body><h1>{title}</h1>"
            f"<p>{body}</p></body></html>")


def _mail(n: int, revision: int) -> bytes:
    title, body = memo(n, revision)
    message = EmailMessage()
    message["From"] = "Office <office@example.org>"
    message["To"] = "All staff <staff@example.org>"
    message["Subject"] = title
    message["Date"] = format_datetime(datetime(2024, 1, 1, 9, tzinfo=UTC) + timedelta(minutes=n))
    message["Message-ID"] = make_msgid(f"memo-{n:05d}", "example.org")
    message.set_content(body)
    return bytes(message)


def _secret(folder: Path, password: str) -> Path:
    """The server's password in a file of the benchmark's (``file:`` credentials)."""
    path = folder / "secret"
    path.write_text(password, encoding="utf-8")
    path.chmod(0o600)
    return path

