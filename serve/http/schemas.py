"""The HTTP API's request and response bodies; internal types are converted here, at the edge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import PurePath
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from core.conversations import Conversation, StoredTurn
from core.jobs import DeadLetter, Item, Job
from core.names import text_problem
from core.registry import DocumentInfo
from core.types import Answer, Chunk, Citation, PageOcr

if TYPE_CHECKING:
    from ingest.deletion import Deletion
    from serve.answering.compose import Shown


def _clean(value: str) -> str:
    problem = text_problem(value, multiline=False)
    if problem is not None:
        raise ValueError(f"the text {problem}")
    return value


# A string field of a request: one line, under the one rule for text (core/names.py).
# Questions are the exception: the answer path checks them, and records what it refuses.
CleanStr = Annotated[str, AfterValidator(_clean)]


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[CleanStr] = Field(min_length=1, max_length=1000,
                                  description="Absolute files or folders under the allowed roots.")
    groups: list[CleanStr] = Field(default_factory=list, max_length=100,
                              description="Access groups of the documents; none: public.")
    sync: bool = Field(default=False, description="Also delete documents whose files are gone.")


class JobOut(BaseModel):
    job_id: str
    owner: str
    status: str
    sources: list[str]
    groups: list[str]
    sync: bool
    planned: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int]
    total: int
    remaining: int
    eta_s: float | None
    error: str | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            job_id=job.job_id, owner=job.owner, status=job.status, sources=list(job.sources),
            groups=list(job.groups), sync=job.sync, planned=job.planned,
            created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
            counts=job.counts, total=job.total, remaining=job.remaining, eta_s=job.eta_s(),
            error=job.error,
        )


class OcrPageOut(BaseModel):
    """A page OCR read: its words' mean confidence (0-100), or why it could not read it."""

    page: int
    confidence: float | None
    words: int
    error: str | None = None

    @classmethod
    def of(cls, page: PageOcr) -> OcrPageOut:
        return cls(page=page.page, confidence=page.confidence, words=page.words,
                   error=page.error or None)


class ItemOut(BaseModel):
    item_id: int
    source: str
    doc_id: str | None
    status: str
    reason: str | None
    attempts: int
    chunks: int
    pages: int | None
    started_at: datetime | None
    finished_at: datetime | None
    # Pages OCR read with less than ENCLAVE_OCR__MIN_CONFIDENCE (or could not read): the
    # document is ingested, but these pages' text may be wrong; someone should look.
    low_confidence_pages: list[OcrPageOut] = Field(default_factory=list)

    @classmethod
    def of(cls, item: Item, low_confidence: Sequence[PageOcr] = ()) -> ItemOut:
        return cls(
            item_id=item.item_id, source=item.source, doc_id=item.doc_id, status=item.status,
            reason=item.reason, attempts=item.attempts, chunks=item.chunks, pages=item.pages,
            started_at=item.started_at, finished_at=item.finished_at,
            low_confidence_pages=[OcrPageOut.of(p) for p in low_confidence],
        )


class DeadLetterOut(BaseModel):
    item_id: int
    source: str
    reason: str
    attempts: int
    created_at: datetime

    @classmethod
    def of(cls, dead: DeadLetter) -> DeadLetterOut:
        return cls(item_id=dead.item_id, source=dead.source, reason=dead.reason,
                   attempts=dead.attempts, created_at=dead.created_at)


class JobDetail(JobOut):
    items: list[ItemOut]
    dead_letters: list[DeadLetterOut]

    @classmethod
    def with_items(
        cls, job: Job, items: list[Item], dead: list[DeadLetter],
        low_confidence: Mapping[str, Sequence[PageOcr]] | None = None,
    ) -> JobDetail:
        """``low_confidence``: by doc_id, the pages of its ingested item to list."""
        low = low_confidence or {}
        return cls(**JobOut.of(job).model_dump(),
                   items=[ItemOut.of(i, low.get(i.doc_id or "", ())) for i in items],
                   dead_letters=[DeadLetterOut.of(d) for d in dead])


class JobList(BaseModel):
    jobs: list[JobOut]


class DocumentDeleted(BaseModel):
    doc_id: str
    source: str
    # Set for a deletion for legal reasons: the audit's kept texts of it that were purged,
    # and the stored conversation answers citing it that were redacted.
    texts_purged: int | None = None
    turns_redacted: int | None = None

    @classmethod
    def of(cls, d: Deletion) -> DocumentDeleted:
        return cls(doc_id=d.doc_id, source=d.source, texts_purged=d.texts_purged,
                   turns_redacted=d.turns_redacted)


class ErrorOut(BaseModel):
    error: str
    detail: str


# -- chat ----------------------------------------------------------------------------------------


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str | list[dict[str, Any]]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        # OpenAI's content parts: keep the text ones.
        return "\n".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str | None = Field(default=None, description="The question; or send messages.")
    messages: list[ChatMessage] | None = Field(
        default=None, max_length=100, description="A conversation ending with the user's turn.")
    conversation_id: CleanStr | None = Field(
        default=None, description="Continue a stored conversation of yours.")
    stream: bool = Field(default=False, description="Server-Sent Events: tokens, then the answer.")

    @model_validator(mode="after")
    def _one_question(self) -> ChatRequest:
        if (self.question is None) == (self.messages is None):
            raise ValueError("send either question or messages")
        if self.messages is not None and (not self.messages or self.messages[-1].role != "user"):
            raise ValueError("messages must end with a user message")
        return self


class CitationOut(BaseModel):
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
    ocr: bool = Field(default=False, description="The cited text was read by OCR from a scan "
                      "or an image: it may hold misread words.")

    @classmethod
    def of(cls, c: Citation, paths: bool = False) -> CitationOut:
        """``paths``: the server's full path as the source (admins, auditors); otherwise its
        display name."""
        return cls(n=c.n, chunk_id=c.chunk_id, doc_id=c.doc_id, version=c.version,
                   source=c.source if paths else shown_source(c), page=c.page, quote=c.quote,
                   start=c.start, end=c.end, supported=c.supported, ocr=c.ocr)


def shown_source(c: Citation) -> str:
    return c.display or PurePath(c.source).name


Outcome = Literal["answered", "not_found", "unverified"]


class ChatResponse(BaseModel):
    conversation_id: str
    answer: str
    # answered; not_found: no passage you may read is relevant enough; unverified: relevant
    # passages exist but no sentence of the model's answer could be verified against them,
    # so the answer quotes them instead (labelled as quotes).
    outcome: Outcome
    refused: bool = Field(description="True unless the outcome is answered (kept for clients "
                                      "written before outcome).")
    citations: list[CitationOut]
    model: str
    timings: dict[str, float]
    # The audit record written for this answer: auditors find it by this id.
    audit_id: str

    @classmethod
    def of(cls, answer: Answer, conversation_id: str, audit_id: str,
           paths: bool = False) -> ChatResponse:
        return cls(conversation_id=conversation_id, answer=answer.text,
                   outcome=answer.outcome,  # type: ignore[arg-type]
                   refused=answer.refused,
                   citations=[CitationOut.of(c, paths) for c in answer.citations],
                   model=answer.model, timings=dict(answer.timings), audit_id=audit_id)


class SentenceOut(BaseModel):
    """One sentence of a streamed answer, sent once it is verified: its text with its
    citation markers, its verdict, and its own quotes (the final answer event merges them)."""

    index: int
    text: str
    supported: bool
    citations: list[CitationOut]

    @classmethod
    def of(cls, shown: Shown, paths: bool = False) -> SentenceOut:
        return cls(index=shown.index, text=shown.text, supported=shown.supported,
                   citations=[CitationOut.of(c, paths) for c in shown.citations])


class ConversationOut(BaseModel):
    conversation_id: str
    title: str
    created_at: datetime
    updated_at: datetime
    turns: int

    @classmethod
    def of(cls, c: Conversation) -> ConversationOut:
        return cls(conversation_id=c.conversation_id, title=c.title, created_at=c.created_at,
                   updated_at=c.updated_at, turns=c.turns)


class TurnOut(BaseModel):
    question: str
    answer: dict[str, Any]
    created_at: datetime
    # The answer and its citations are withheld: they cite a document the caller can no
    # longer read, or one that no longer exists (answer["answer"] says so).
    withheld: bool = False
    # Redacted by a deletion for legal reasons of a document it cited.
    redacted: bool = False

    @classmethod
    def of(cls, turn: StoredTurn, paths: bool = False) -> TurnOut:
        answer = dict(turn.answer)
        if not paths:  # employees see display names, as they did when it was answered
            answer["citations"] = [
                {**c, "source": c.get("display") or PurePath(str(c.get("source", ""))).name}
                for c in answer.get("citations", ())]
        return cls(question=turn.question, answer=answer, created_at=turn.created_at,
                   withheld=bool(turn.answer.get("withheld")),
                   redacted=bool(turn.answer.get("redacted")))


class ConversationDetail(ConversationOut):
    messages: list[TurnOut]


class ConversationList(BaseModel):
    conversations: list[ConversationOut]


# -- documents -----------------------------------------------------------------------------------


class DocumentOut(BaseModel):
    doc_id: str
    # The display name (the path relative to the folder it was ingested from); the
    # server's full path for admins and auditors.
    source: str
    title: str
    version: str | None
    pages: int | None
    chunks: int
    updated_at: datetime

    @classmethod
    def of(cls, info: DocumentInfo, paths: bool = False) -> DocumentOut:
        return cls(doc_id=info.doc_id, source=info.source if paths else info.display_name,
                   title=info.title,
                   version=info.active_version, pages=info.page_count, chunks=info.chunk_count,
                   updated_at=info.updated_at)


class ChunkOut(BaseModel):
    chunk_id: str
    doc_id: str
    version: str
    source: str
    title: str
    text: str
    page_start: int | None
    page_end: int | None
    char_start: int
    char_end: int
    ocr: bool = False  # read by OCR from a scan or an image

    @classmethod
    def of(cls, chunk: Chunk, info: DocumentInfo, paths: bool = False) -> ChunkOut:
        return cls(chunk_id=chunk.chunk_id, doc_id=chunk.doc_id, version=chunk.version,
                   source=info.source if paths else info.display_name, title=info.title,
                   text=chunk.text,
                   page_start=chunk.page_start, page_end=chunk.page_end,
                   char_start=chunk.char_start, char_end=chunk.char_end,
                   ocr=bool(chunk.meta.get("ocr", False)))
