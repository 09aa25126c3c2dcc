"""What an admin does with sources, the same through the CLI and the admin API: add one
(who may read it said explicitly), remove one with its documents, and check a mapping
before the first sync. Each action is an audit record."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.admin_records import record_admin
from core.audit import AuditLog
from core.errors import InputError, NotFound, SyncRunning
from core.settings import Settings
from core.sources import Source, SourceBook
from core.users import User


def add_source(book: SourceBook, audit: AuditLog, actor: str, channel: str, source: Source,
               confine: Callable[[Path], Path]) -> Source:
    """Record a new source. A folder must lie inside the allowed roots (``confine``)."""
    check_access(source)
    if source.kind == "folder":
        source = replace(source, location=str(confine(Path(source.location))))
    added = book.add(source)
    record_admin(audit, actor, "source.added", channel, source=added.name,
                 source_kind=added.kind, location=added.location, groups=list(added.groups),
                 mapping={k: list(v) for k, v in added.mapping.items()},
                 every_s=added.every_s)
    return added


def edit_source(book: SourceBook, audit: AuditLog, actor: str, channel: str, name: str,
                changes: dict[str, Any]) -> Source:
    """Change a source's settings; who may read must still be said (see check_access).
    The next sync applies a new mapping or new groups to what is in enclave already."""
    current = book.get(name)
    check_access(replace(current, **changes))
    changed = book.update(name, **changes)
    record_admin(audit, actor, "source.changed", channel, source=name,
                 changed=sorted(changes), groups=list(changed.groups),
                 mapping={k: list(v) for k, v in changed.mapping.items()},
                 every_s=changed.every_s)
    return changed


def remove_source(book: SourceBook, audit: AuditLog, actor: str, channel: str, name: str,
                  delete: Callable[[str], object], running: Callable[[str], bool],
                  keep_documents: bool = False) -> int:
    """Forget a source and, unless ``keep_documents``, delete what it brought in. Refused
    while a sync of it runs: its items would bring back what was just deleted."""
    job_id = book.get(name).job_id
    if job_id and running(job_id):
        raise SyncRunning(f"source {name} is being synced by job {job_id}: cancel it first "
                          f"(enclave jobs cancel {job_id})")
    doc_ids = book.remove(name)
    deleted = 0
    if not keep_documents:
        for doc_id in doc_ids:
            try:
                delete(doc_id)
                deleted += 1
            except NotFound:
                continue
    record_admin(audit, actor, "source.removed", channel, source=name,
                 documents_deleted=deleted, kept=keep_documents)
    return deleted


def check_access(source: Source) -> None:
    """Who may read must be said: a mailbox or site without groups, or a share without a
    mapping, would be readable by no one (and silently so)."""
    if source.kind in ("imap", "web") and not source.groups:
        raise InputError(f"a {source.kind} source needs groups (--group G), or --public")
    if source.kind in ("folder", "smb") and not source.mapping:
        raise InputError("a share needs a mapping, PRINCIPAL=GROUP (e.g. group:finance=finance, "
                         "other=@public): unmapped readers are granted nothing")


def check_mapping_report(source: Source, settings: Settings, users: Sequence[User]) -> dict[str, Any]:
    """List the source (nothing is fetched or ingested) and say which groups its documents
    would get, which principals no mapping covers, and how many documents each user could
    read."""
    from ingest.sources.sync import open_connector

    connector = open_connector(source, settings)
    by_groups: Counter[tuple[str, ...] | None] = Counter()
    unmapped: Counter[str] = Counter()
    try:
        for entry in connector.entries():
            groups = source.groups_for(entry.principals)
            by_groups[groups] += 1
            if groups is None:
                unmapped.update(entry.principals or ("(no readers)",))
    finally:
        connector.close()
    readable = {
        user.user_id: sum(n for g, n in by_groups.items()
                          if g is not None and (not g or set(g) & set(user.groups)))
        for user in users}
    return {
        "source": source.name,
        "documents": sum(by_groups.values()),
        "by_groups": [{"groups": list(g) if g is not None else None, "public": g == (),
                       "documents": n} for g, n in by_groups.most_common()],
        "not_ingested_unmapped": sum(n for g, n in by_groups.items() if g is None),
        "unmapped_principals": dict(unmapped.most_common()),
        "users": readable,
    }
