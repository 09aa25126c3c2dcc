"""Domain types shared by every package. Frozen dataclasses; pydantic lives only at the HTTP edge."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

# Stable namespace so ids survive restarts, machines and re-ingestion.
_NAMESPACE = uuid.UUID("6f1c2d4e-8a8b-4c59-9e43-5d0f6c1b7a21")


def make_doc_id(source: str) -> str:
    """A document's id: stable for one source across all its versions."""
    return str(uuid.uuid5(_NAMESPACE, f"doc:{source}"))


# Between an archive's source and the path of one of its members: the member's source is
# ``/data/reports.zip!/2024/q1.pdf`` (ingest/archives.py).
MEMBER_SEPARATOR = "!/"


def archives_of(source: str) -> list[str]:
    """The sources of the archives a member's source lies in, outermost first."""
    return [source[:i] for i in range(len(source)) if source.startswith(MEMBER_SEPARATOR, i)]


def is_uuid(text: str) -> bool:
    """Whether ``text`` can be an id of ours (documents and chunks have UUIDs)."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def make_chunk_id(doc_id: str, version: str, ordinal: int) -> str:
    """Deterministic, so re-running a job overwrites rather than duplicates."""
    return str(uuid.uuid5(_NAMESPACE, f"chunk:{doc_id}:{version}:{ordinal}"))


@dataclass(frozen=True, slots=True)
class Document:
    """One file at one version."""

    doc_id: str
    source: str
    version_sha256: str
    acl: tuple[str, ...]  # groups that may read it; empty means public
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def public(self) -> bool:
        return not self.acl


@dataclass(frozen=True, slots=True)
class Element:
    """One parsed piece of a document, placed in the document's extracted text."""

    text: str
    category: str  # Title, NarrativeText, Table, ListItem, ...
    page: int | None
    char_start: int
    char_end: int
    # Read from a picture of the page by OCR, not from the file's own text.
    ocr: bool = False


@dataclass(frozen=True, slots=True)
class PageOcr:
    """How OCR read one page: its mean word confidence (0-100; None when it found no
    words), and why it could not read the page, if it could not."""

    page: int
    confidence: float | None
    words: int
    error: str = ""

    def low(self, min_confidence: float) -> bool:
        """Unread, or read with less confidence than ``min_confidence`` (a blank page is not)."""
        return bool(self.error) or (
            self.words > 0 and self.confidence is not None and self.confidence < min_confidence)

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {"page": self.page, "confidence": self.confidence,
                                   "words": self.words}
        if self.error:
            data["error"] = self.error
        return data

    @classmethod
    def of_json(cls, data: Mapping[str, Any]) -> PageOcr:
        confidence = data.get("confidence")
        return cls(int(data["page"]), None if confidence is None else float(confidence),
                   int(data.get("words", 0)), str(data.get("error", "")))


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """What parsing yields: the extracted text and its elements, which index into it."""

    text: str
    elements: tuple[Element, ...]
    title: str
    page_count: int | None
    filetype: str
    # The pages read by OCR (images, scanned PDF pages), each with its confidence.
    ocr_pages: tuple[PageOcr, ...] = ()


@dataclass(frozen=True, slots=True)
class Chunk:
    chunk_id: str
    doc_id: str
    version: str
    text: str  # the passage as stored: the document text at [char_start, char_end)
    page_start: int | None
    page_end: int | None
    char_start: int
    char_end: int
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def section(self) -> str:
        return str(self.meta.get("section", ""))

    @property
    def source(self) -> str:
        """The file the chunk came from, as stored; its document id if none was stored."""
        return str(self.meta.get("source", self.doc_id))

    @property
    def display(self) -> str:
        """What an employee is shown: the path relative to the folder it was ingested
        from; for chunks stored before display names, the file name of ``source``."""
        return str(self.meta.get("display") or PurePath(self.source).name)

    def embedding_text(self) -> str:
        """What the embedder reads: the section title as context, then the passage."""
        section = self.section
        if section and not self.text.startswith(section):
            return f"{section}\n{self.text}"
        return self.text


@dataclass(frozen=True, slots=True)
class SparseVector:
    indices: tuple[int, ...]
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking; every search takes one."""

    user_id: str
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()

    def may_read(self, acl: Sequence[str]) -> bool:
        """A document with no groups is public; otherwise one shared group is needed."""
        return not acl or bool(set(acl) & set(self.groups))

    @property
    def sees_paths(self) -> bool:
        """Admins and auditors see where a document lies on the server; employees see its
        display name (the server's folders are none of their business, and can leak)."""
        return bool({"admin", "auditor"} & set(self.roles))


@dataclass(frozen=True, slots=True)
class Hit:
    chunk: Chunk
    score: float


@dataclass(frozen=True, slots=True)
class Citation:
    n: int
    chunk_id: str
    doc_id: str
    version: str
    source: str
    page: int | None
    quote: str
    start: int
    end: int
    supported: bool
    # What an employee is shown for the source: its path relative to the folder it was
    # ingested from, never the server's absolute path (auditors and admins see ``source``).
    display: str = ""
    # The cited text was read by OCR from a scan or an image: it may hold misread words.
    ocr: bool = False


@dataclass(frozen=True, slots=True)
class SentenceCheck:
    """The verification of one sentence the model wrote."""

    text: str  # as written, citation markers removed
    cited: tuple[int, ...]  # the citations (their ``n``) the sentence carries in the answer
    supported: bool
    score: float  # support of the best passage span, 0..1
    attributed: bool  # its citation was attached by verification, not written by the model
    kept: bool  # False when the unsupported-sentence policy dropped it


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    citations: tuple[Citation, ...]
    refused: bool
    model: str
    timings: Mapping[str, float] = field(default_factory=dict)
    checks: tuple[SentenceCheck, ...] = ()
    # The question retrieval actually ran: a follow-up rewritten to stand alone.
    standalone_question: str = ""
    # What retrieval returned (best first) and the chunk ids the model was shown, in order:
    # the audit trail records both.
    retrieved: tuple[Hit, ...] = ()
    shown: tuple[str, ...] = ()
    # Why a refusal: "not relevant", "context", "model", "unsupported" or "empty".
    refusal_reason: str = ""
    # answered; not_found: no passage relevant enough; unverified: relevant passages exist
    # but no sentence of the model's answer could be verified (the reply quotes them).
    outcome: str = "answered"
    # What the answer ran with, as it ran: retrieval, thresholds, policy, model, prompt.
    ran_with: Mapping[str, Any] = field(default_factory=dict)
    # Tokens the model read and wrote for this answer (the rewrite of a follow-up included):
    # prompt_tokens, completion_tokens. Empty when no model ran.
    usage: Mapping[str, int] = field(default_factory=dict)
