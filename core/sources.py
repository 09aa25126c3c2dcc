"""Sources: where documents live (a folder, an SMB share, an IMAP mailbox, an intranet
site), how to reach them, who may read what they hold, and when to sync them.

A source's credentials are never stored: it names where they come from (``env:NAME``, an
environment variable of the process that syncs, or ``file:/path``, a secret file such as
a Docker or Kubernetes secret), read only when a sync opens the source.

Each sync is an ingestion job of the ordinary kind whose one "source" reads
``source:NAME``. What the source held at its last sync is kept entry by entry
(``source_entries``): the change signal listed, and the one last ingested successfully,
so a re-sync fetches only what changed, and whatever is no longer listed is deleted.

Only one sync of a source runs at a time: starting one is a conditional UPDATE that
takes the source only when no unfinished job holds it (:meth:`SourceBook.claim`).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, delete, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from core.choices import KINDS as KINDS  # where callers have always found them
from core.choices import Kind as Kind
from core.db import Base, Database
from core.errors import InputError, NotFound, SourceError, SyncRunning
from core.jobs import CANCELLED, DONE, JobRow, _count
from core.names import clean_text, validate_groups

# Kinds whose documents carry the permissions the source gives each one; the others
# take the groups set on the source.
PERMISSION_KINDS = frozenset({"folder", "smb"})
# A mapping target that makes a document readable by every user.
PUBLIC = "@public"
JOB_PREFIX = "source:"
# The limits each kind takes (``--option KEY=VALUE``), and their types.
OPTIONS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "folder": {},
    "smb": {"timeout_s": (int, float), "resolve_unix_ids": bool},
    "imap": {"timeout_s": (int, float), "verify": bool},
    "web": {"max_pages": int, "max_depth": int, "timeout_s": (int, float),
            "verify": (bool, str), "user_agent": str},
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def _now() -> datetime:
    return datetime.now(UTC)


class SourceRow(Base):
    __tablename__ = "sources"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    location: Mapped[str] = mapped_column(Text)
    username: Mapped[str | None] = mapped_column(Text, nullable=True)
    credentials: Mapped[str | None] = mapped_column(Text, nullable=True)
    include_json: Mapped[str] = mapped_column(Text, default="[]")
    exclude_json: Mapped[str] = mapped_column(Text, default="[]")
    groups_json: Mapped[str] = mapped_column(Text, default="[]")
    mapping_json: Mapped[str] = mapped_column(Text, default="{}")
    options_json: Mapped[str] = mapped_column(Text, default="{}")
    every_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    last_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class SourceEntryRow(Base):
    __tablename__ = "source_entries"

    source: Mapped[str] = mapped_column(ForeignKey("sources.name", ondelete="CASCADE"),
                                        primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    location: Mapped[str] = mapped_column(Text)
    doc_id: Mapped[str] = mapped_column(String(36))
    entry_json: Mapped[str] = mapped_column(Text)
    listed_signal: Mapped[str] = mapped_column(Text)
    synced_signal: Mapped[str | None] = mapped_column(Text, nullable=True)
    seen_job: Mapped[str | None] = mapped_column(String(36), nullable=True)


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    kind: Kind
    location: str
    username: str | None = None
    credentials: str | None = None  # env:NAME or file:/path; never the secret itself
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # mailbox and website sources: who may read them
    # Share and folder sources: a principal the source names ("group:finance",
    # "user:alice", "other", an SMB SID) -> the enclave groups it grants.
    mapping: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)  # kind-specific limits
    every_s: int | None = None
    job_id: str | None = None
    last_sync_at: datetime | None = None

    @property
    def job_source(self) -> str:
        return f"{JOB_PREFIX}{self.name}"

    def secret(self) -> str | None:
        """The password, read now from where ``credentials`` says; never stored or logged."""
        if not self.credentials:
            return None
        where, _, ref = self.credentials.partition(":")
        if where == "env":
            value = os.environ.get(ref)
            if value is None:
                raise SourceError(f"source {self.name}: the environment variable {ref} "
                                  f"(its credentials) is not set")
            return value
        try:
            return Path(ref).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SourceError(f"source {self.name}: cannot read its credentials file {ref}: "
                              f"{exc.strerror or exc}") from exc

    def groups_for(self, principals: Iterable[str]) -> tuple[str, ...] | None:
        """The enclave groups a document gets: the source's for mailbox and website kinds;
        for shares and folders those its readers map to ("()": public). None when none of
        its readers is mapped: it is readable by no one in enclave, so not ingested."""
        if self.kind not in PERMISSION_KINDS:
            if PUBLIC in self.groups:
                return ()
            return self.groups or None
        granted: set[str] = set()
        mapped = False
        for principal in principals:
            if principal in self.mapping:
                mapped = True
                granted.update(self.mapping[principal])
        if not mapped or not granted:
            return None
        if PUBLIC in granted:
            return ()
        return validate_groups(granted)


def source_of_job(sources: Sequence[str]) -> str | None:
    """The name of the source a job syncs, or None for a job over folders and uploads."""
    if len(sources) == 1 and sources[0].startswith(JOB_PREFIX):
        return sources[0][len(JOB_PREFIX):]
    return None


def parse_every(text: str | None) -> int | None:
    """"30m", "6h", "1d" or seconds -> seconds; None, "" or "off" -> no schedule."""
    if not text or text.strip().lower() == "off":
        return None
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not match:
        raise InputError(f"invalid schedule {text!r}: give an interval such as 15m, 6h or 1d")
    seconds = int(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
    if seconds < 60:
        raise InputError("a schedule runs at most once a minute")
    return seconds


def check_credentials(ref: str | None) -> str | None:
    if ref is None:
        return None
    where, _, name = ref.partition(":")
    if where not in ("env", "file") or not name:
        raise InputError("credentials come from env:VARIABLE or file:/path/to/secret, "
                         "never the password itself")
    if where == "file" and not Path(name).is_absolute():
        raise InputError("give the secret file as an absolute path")
    return ref


def _groups(names: Iterable[str]) -> tuple[str, ...]:
    names = tuple(names)
    return (PUBLIC,) if PUBLIC in names else validate_groups(names)


def check_text(location: str | None = None, username: str | None = None,
               credentials: str | None = None, include: Iterable[str] = (),
               exclude: Iterable[str] = (), mapping: Mapping[str, Any] | None = None,
               options: Mapping[str, Any] | None = None) -> None:
    """Every string of a source under core.names' rule: no control character, no lone
    surrogate (it could be neither stored faithfully nor shown back)."""
    for what, value in (("location", location), ("username", username),
                         ("credentials", credentials)):
        if value is not None:
            clean_text(value, what, multiline=False)
    for what, values in (("include", include), ("exclude", exclude),
                          ("a mapping's principal", (mapping or {}).keys()),
                          ("an option's name", (options or {}).keys())):
        for value in values:
            clean_text(value, what, multiline=False)
    for value in (options or {}).values():
        if isinstance(value, str):
            clean_text(value, "an option's value", multiline=False)


def check_options(kind: str, options: Mapping[str, Any]) -> None:
    known = OPTIONS.get(kind, {})
    for key, value in options.items():
        if key not in known:
            raise InputError(f"option {key!r} is not one a {kind} source takes"
                             + (f" ({', '.join(sorted(known))})" if known else ""))
        if (isinstance(value, bool) and known[key] in (int, (int, float))) \
                or not isinstance(value, known[key]):
            raise InputError(f"option {key}: {value!r} is not a valid value")
        if isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
            raise InputError(f"option {key}: give a positive number")


def check_mapping(mapping: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    checked: dict[str, tuple[str, ...]] = {}
    for principal, groups in mapping.items():
        if not principal.strip():
            raise InputError("a mapping names a principal, e.g. group:finance")
        names = tuple(groups)
        checked[principal] = _groups(names)
    return checked


class SourceBook:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, source: Source) -> Source:
        if not _NAME.match(source.name):
            raise InputError(f"invalid source name {source.name!r}: lower-case letters, "
                             "digits, '.', '_' and '-', at most 63")
        if source.kind not in KINDS:
            raise InputError(f"unknown kind {source.kind!r}: one of {', '.join(KINDS)}")
        check_text(source.location, source.username, source.credentials, source.include,
                   source.exclude, source.mapping, source.options)
        check_options(source.kind, source.options)
        with self.db.session() as s:
            if s.get(SourceRow, source.name) is not None:
                raise InputError(f"a source named {source.name} exists already")
            twin = s.scalars(select(SourceRow.name).where(
                SourceRow.kind == source.kind, SourceRow.location == source.location)).first()
            if twin is not None:
                # Two sources of one location would own the same documents: removing one
                # would delete what the other still holds.
                raise InputError(f"source {twin} syncs {source.location} already")
            s.add(SourceRow(
                name=source.name, kind=source.kind, location=source.location,
                username=source.username, credentials=check_credentials(source.credentials),
                include_json=json.dumps(list(source.include)),
                exclude_json=json.dumps(list(source.exclude)),
                groups_json=json.dumps(list(_groups(source.groups))),
                mapping_json=json.dumps({k: list(v) for k, v in
                                         check_mapping(source.mapping).items()}),
                options_json=json.dumps(dict(source.options)), every_s=source.every_s))
        return self.get(source.name)

    def get(self, name: str) -> Source:
        with self.db.session() as s:
            row = s.get(SourceRow, name)
            if row is None:
                raise NotFound(f"no source named {name}")
            return _source(row)

    def all(self) -> list[Source]:
        with self.db.session() as s:
            return [_source(r) for r in s.scalars(select(SourceRow).order_by(SourceRow.name))]

    def update(self, name: str, **changes: Any) -> Source:
        """Change a source's settings (``username``, ``credentials``, ``include``,
        ``exclude``, ``groups``, ``mapping``, ``options``, ``every_s``). A change of who may
        read (groups, mapping) or of what is taken (include, exclude) makes the next sync
        read every entry again, so that the change reaches documents already in enclave;
        nothing is embedded again unless its content changed."""
        allowed = {"username", "credentials", "include", "exclude", "groups", "mapping",
                   "options", "every_s"}
        unknown = set(changes) - allowed
        if unknown:
            raise InputError(f"cannot change {', '.join(sorted(unknown))} of a source")
        current = self.get(name)
        check_text(**{k: v for k, v in changes.items() if k != "every_s" and k != "groups"})
        if "options" in changes:
            check_options(current.kind, changes["options"])
        values: dict[str, Any] = {}
        for key, value in changes.items():
            match key:
                case "credentials":
                    values["credentials"] = check_credentials(value)
                case "include" | "exclude":
                    values[f"{key}_json"] = json.dumps(list(value))
                case "groups":
                    values["groups_json"] = json.dumps(list(_groups(value)))
                case "mapping":
                    values["mapping_json"] = json.dumps(
                        {k: list(v) for k, v in check_mapping(value).items()})
                case "options":
                    values["options_json"] = json.dumps(dict(value))
                case _:
                    values[key] = value
        values["updated_at"] = _now()
        rescan = bool({"include", "exclude", "groups", "mapping"} & set(changes))
        with self.db.session() as s:
            s.execute(update(SourceRow).where(SourceRow.name == name).values(**values))
            if rescan:
                s.execute(update(SourceEntryRow).where(SourceEntryRow.source == name)
                          .values(synced_signal=None))
        return self.get(name)

    def remove(self, name: str) -> list[str]:
        """Forget the source; returns the ids of the documents it brought in (for deletion)."""
        with self.db.session() as s:
            if s.get(SourceRow, name) is None:
                raise NotFound(f"no source named {name}")
            doc_ids = list(s.scalars(select(SourceEntryRow.doc_id)
                                     .where(SourceEntryRow.source == name)))
            s.execute(delete(SourceEntryRow).where(SourceEntryRow.source == name))
            s.execute(delete(SourceRow).where(SourceRow.name == name))
        return doc_ids

    def claim(self, name: str, job_id: str) -> None:
        """Take the source for the sync ``job_id``; SyncRunning when a sync holds it."""
        finished = select(JobRow.job_id).where(JobRow.status.in_((DONE, CANCELLED)))
        with self.db.session() as s:
            taken = s.execute(update(SourceRow).where(
                SourceRow.name == name,
                or_(SourceRow.job_id.is_(None), SourceRow.job_id.in_(finished),
                    ~SourceRow.job_id.in_(select(JobRow.job_id))))
                .values(job_id=job_id, last_sync_at=_now()))
            if not _count(taken):
                if s.get(SourceRow, name) is None:
                    raise NotFound(f"no source named {name}")
                holder = s.get(SourceRow, name)
                raise SyncRunning(f"source {name} is being synced by job "
                                  f"{holder.job_id if holder else '?'}; wait for it to finish")

    def due(self, now: datetime | None = None) -> list[str]:
        """Sources whose schedule says a sync is due and that no sync holds."""
        now = now or _now()
        due = []
        for source in self.all():
            if source.every_s is None:
                continue
            last = source.last_sync_at
            if last is None or _aware(last) + timedelta(seconds=source.every_s) <= now:
                due.append(source.name)
        return due

    # -- entries ---------------------------------------------------------------------------

    def entries(self, name: str) -> dict[str, tuple[str, str | None]]:
        """key -> (location, signal last synced) of every entry known for the source."""
        with self.db.session() as s:
            rows = s.execute(select(SourceEntryRow.key, SourceEntryRow.location,
                                    SourceEntryRow.synced_signal)
                             .where(SourceEntryRow.source == name))
            return {k: (loc, signal) for k, loc, signal in rows}

    def list_entries(self, name: str, job_id: str,
                     rows: Iterable[tuple[str, str, str, str, dict[str, Any]]]) -> None:
        """Record (key, location, doc_id, signal, entry) as listed by the sync ``job_id``."""
        with self.db.session() as s:
            for key, location, doc_id, signal, entry in rows:
                row = s.get(SourceEntryRow, (name, key))
                if row is None:
                    s.add(SourceEntryRow(source=name, key=key, location=location, doc_id=doc_id,
                                         entry_json=json.dumps(entry), listed_signal=signal,
                                         seen_job=job_id))
                else:
                    row.location, row.doc_id, row.listed_signal = location, doc_id, signal
                    row.entry_json, row.seen_job = json.dumps(entry), job_id

    def entry(self, name: str, location: str) -> tuple[dict[str, Any], str] | None:
        """The entry listed at ``location`` and its listed signal."""
        with self.db.session() as s:
            row = s.scalars(select(SourceEntryRow).where(
                SourceEntryRow.source == name, SourceEntryRow.location == location)).first()
            return (json.loads(row.entry_json), row.listed_signal) if row else None

    def synced(self, name: str, location: str, signal: str | None) -> None:
        """The entry at ``location`` is in enclave as listed (``signal``), or not (None)."""
        with self.db.session() as s:
            s.execute(update(SourceEntryRow).where(
                SourceEntryRow.source == name, SourceEntryRow.location == location)
                .values(synced_signal=signal))

    def forget(self, name: str, keys: Sequence[str]) -> None:
        with self.db.session() as s:
            s.execute(delete(SourceEntryRow).where(SourceEntryRow.source == name,
                                                   SourceEntryRow.key.in_(list(keys))))


def _source(row: SourceRow) -> Source:
    return Source(
        name=row.name, kind=row.kind,  # type: ignore[arg-type]
        location=row.location, username=row.username, credentials=row.credentials,
        include=tuple(json.loads(row.include_json)), exclude=tuple(json.loads(row.exclude_json)),
        groups=tuple(json.loads(row.groups_json)),
        mapping={k: tuple(v) for k, v in json.loads(row.mapping_json).items()},
        options=json.loads(row.options_json), every_s=row.every_s, job_id=row.job_id,
        last_sync_at=row.last_sync_at)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_job_id() -> str:
    return str(uuid.uuid4())
