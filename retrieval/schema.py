"""The collection's shape, shared by every store implementation.

One collection; each point is one chunk with a named dense vector and a named sparse
vector. Payload fields below; those marked indexed carry a payload index because
filters use them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from core.ports import StoredChunk
from core.types import Chunk

DENSE = "dense"
SPARSE = "sparse"

# A public document's ``groups`` hold this marker, so the access filter is one keyword
# match (a principal reads its own groups plus the marker). Group names may not be "*".
PUBLIC = "*"

# field -> index type; the access filter and deletions use these.
INDEXED_FIELDS: Mapping[str, str] = {
    "doc_id": "keyword",
    "version": "keyword",
    "groups": "keyword",
}


def stored_groups(acl: Sequence[str]) -> list[str]:
    return sorted(set(acl)) if acl else [PUBLIC]


def payload_of(point: StoredChunk) -> dict[str, Any]:
    chunk, doc = point.chunk, point.document
    return {
        "doc_id": chunk.doc_id,
        "version": chunk.version,
        "source": doc.source,
        # Employees see this, never ``source``: the server's absolute path.
        "display": str(doc.meta.get("display") or PurePath(doc.source).name),
        "title": point.title,
        "section": chunk.section,
        "ordinal": int(chunk.meta.get("ordinal", 0)),
        "text": chunk.text,
        "page_start": chunk.page_start,
        "page_end": chunk.page_end,
        "char_start": chunk.char_start,
        "char_end": chunk.char_end,
        "categories": list(chunk.meta.get("categories", [])),
        # Read by OCR from a scan or an image (citations carry it).
        "ocr": bool(chunk.meta.get("ocr", False)),
        "groups": stored_groups(doc.acl),
        "public": doc.public,
        "ingested_at": point.ingested_at.isoformat(),
        # What a source said of the document: a message's From, To, Date and Subject.
        "source_meta": dict(doc.meta.get("source_meta") or {}),
    }


def chunk_of(point_id: str, payload: Mapping[str, Any]) -> Chunk:
    meta = {
        key: payload.get(key)
        for key in ("source", "display", "title", "section", "ordinal", "categories", "groups",
                    "public", "ingested_at")
    }
    meta["source_meta"] = dict(payload.get("source_meta") or {})
    meta["ocr"] = bool(payload.get("ocr", False))  # absent in chunks stored before OCR
    return Chunk(
        chunk_id=str(point_id),
        doc_id=str(payload["doc_id"]),
        version=str(payload["version"]),
        text=str(payload.get("text", "")),
        page_start=payload.get("page_start"),
        page_end=payload.get("page_end"),
        char_start=int(payload.get("char_start", 0)),
        char_end=int(payload.get("char_end", 0)),
        meta=meta,
    )


def readable_by(groups: Sequence[str]) -> list[str]:
    """What a principal's access filter matches: its groups and the public marker."""
    return sorted({g for g in groups if g and g != PUBLIC} | {PUBLIC})
