"""Deleting a document, on the record; for legal reasons, everywhere its text is kept."""

from __future__ import annotations

from dataclasses import dataclass

from core.admin_records import record_admin
from core.audit import AuditLog
from core.conversations import ConversationBook
from core.errors import NotFound
from ingest.pipeline import Ingestor

# What a stored answer says once a document it cited was deleted for legal reasons.
REDACTED = "This answer was redacted: a document it cited was deleted for legal reasons."


@dataclass(frozen=True, slots=True)
class Deletion:
    doc_id: str
    source: str
    texts_purged: int | None  # None unless a deletion for legal reasons
    turns_redacted: int | None = None  # stored conversation answers that cited it (legal)


def delete_document_recorded(ingestor: Ingestor, audit: AuditLog, conversations: ConversationBook,
                             actor: str, channel: str, doc_id: str,
                             legal_reason: str | None) -> Deletion:
    """Delete a document and record it; for legal reasons, also purge the audit's kept texts
    and redact the stored conversation answers that cite it.

    A legal deletion also reaches a document already gone from the index whose texts the
    audit still keeps.
    """
    try:
        source = ingestor.delete_id(doc_id).source
    except NotFound:
        kept = audit.source_of(doc_id) if legal_reason is not None else None
        if kept is None:
            raise
        source = kept
    if legal_reason is None:
        record_admin(audit, actor, "document.deleted", channel, doc_id=doc_id, source=source)
        return Deletion(doc_id, source, None)
    purged = audit.purge_document(doc_id, legal_reason)
    redacted = conversations.redact_citing(doc_id, REDACTED)
    record_admin(audit, actor, "document.legal_deletion", channel, doc_id=doc_id,
                 source=source, reason=legal_reason, texts_purged=purged,
                 turns_redacted=redacted)
    return Deletion(doc_id, source, purged, redacted)
