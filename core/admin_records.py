"""Admin actions on the audit trail: who did what, through which door (CLI or API)."""

from __future__ import annotations

from typing import Any

from core.audit import AuditLog, Event, Record
from core.jobs import Job


def record_admin(audit: AuditLog, actor: str, kind: str, channel: str, **details: Any) -> Record:
    """An admin action (jobs, deletions, users and keys, exports)."""
    return audit.append(Event(kind, actor, {"channel": channel, **details}))


def record_job(audit: AuditLog, actor: str, kind: str, channel: str, job: Job,
               **extra: Any) -> Record:
    return record_admin(audit, actor, kind, channel, job_id=job.job_id,
                        sources=list(job.sources), groups=list(job.groups), sync=job.sync,
                        **extra)
