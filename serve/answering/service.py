"""AnswerService: the only way an answer leaves enclave, whatever the channel.

HTTP (plain and streamed), the OpenAI-compatible route, ``enclave ask``, ``chat`` and
``demo``, the web page and ``enclave eval answers`` all call it, and it does every step in
one order: the question is checked (one check, one place); retrieval with the access
filter, generation and verification run in the answerer, each verified sentence is
checked against the asker again before it is handed on; the whole answer is checked
again; the audit record is written from what ran; the turn is stored; then the reply.
A question that gets no answer (refused as invalid, failed, withheld, abandoned) is on
the record too, with what a stream had shown of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from core.audit import AuditLog
from core.conversations import ConversationBook, StoredTurn
from core.errors import Abandoned, InputError, Withheld
from core.names import clean_text
from core.registry import Registry
from core.types import Answer, Citation, Principal
from serve.answering.answerer import Answerer, OnSentence, OnToken
from serve.answering.compose import Shown
from serve.answering.exchange import NOT_STREAMED, Exchange, Turn
from serve.answering.records import answer_event, failure_event, rejection_event

log = logging.getLogger(__name__)

GONE = "the client went away before the answer was complete"
WITHHELD = ("This answer is withheld: it cites a document you can no longer read, or one "
            "that no longer exists.")


@dataclass(frozen=True, slots=True)
class Reply:
    answer: Answer
    audit_id: str  # the audit record written for it, before it was given
    audit_seq: int
    conversation_id: str | None


def check_question(question: str, limit: int, what: str = "the question") -> str:
    """The question, stripped; InputError when it is empty, too long, or not text."""
    question = question.strip() if isinstance(question, str) else ""
    if not question:
        raise InputError(f"{what} is empty")
    clean_text(question, what)
    if len(question) > limit:
        raise InputError(f"{what} is {len(question)} characters long; the limit is {limit}")
    return question


class AnswerService:
    def __init__(self, answerer: Answerer, registry: Registry, audit: AuditLog,
                 conversations: ConversationBook, max_question_chars: int) -> None:
        self.answerer = answerer
        self.registry = registry
        self.audit = audit
        self.conversations = conversations
        self.max_question_chars = max_question_chars

    # -- before: the question ------------------------------------------------------------

    def prepare(self, principal: Principal, question: str, history: Sequence[Turn] = (),
                conversation_id: str | None = None, *, store: bool = False,
                channel: str = "api", streaming: str = NOT_STREAMED) -> Exchange:
        """The exchange to answer: the question checked, a stored conversation's turns read
        (as the asker may see them now) or a new conversation started when ``store``.
        A refused question is recorded, then raised."""
        try:
            question = check_question(question, self.max_question_chars)
            for turn in history:
                # Earlier questions are read again (rewriting a follow-up): the same limits.
                check_question(turn.question, self.max_question_chars, "an earlier question")
                clean_text(turn.answer, "an earlier answer")
            turns = tuple(history)
            if conversation_id is not None:
                stored = self.conversations.turns(principal.user_id, conversation_id)
                # A withheld answer is not read back to the model either: its text came
                # from a document the asker may no longer read.
                turns = tuple(Turn(t.question, str(t.answer.get("answer", "")))
                              for t in readable_turns(self.registry, principal, stored)) + turns
            elif store:
                conversation_id = self.conversations.start(principal.user_id, question)
        except InputError as exc:
            self._rejected(principal, channel, question, exc)
            raise
        return Exchange(question, turns, conversation_id, channel, streaming)

    # -- the answer ------------------------------------------------------------------------

    def answer(self, principal: Principal, exchange: Exchange, *,
               on_sentence: OnSentence | None = None, on_token: OnToken | None = None,
               stop: Callable[[], bool] | None = None) -> Reply:
        """Answer, check, record, store. ``on_sentence`` gets each verified sentence after
        its own access check; ``stop`` says the reader went away (the work stops at the
        model's next token and is recorded as abandoned)."""
        shown: list[str] = []
        seen: dict[str, bool] = {}

        def stopped() -> None:
            if stop is not None and stop():
                raise Abandoned(GONE)

        def sentence(s: Shown) -> None:
            stopped()
            self._guard(principal, s.citations, seen)
            shown.append(s.text)
            if on_sentence is not None:
                on_sentence(s)

        def token(piece: str) -> None:
            stopped()
            if on_token is not None:
                on_token(piece)

        try:
            try:
                result = self.answerer.answer(exchange.question, principal, exchange.history,
                                              on_token=token, on_sentence=sentence)
                stopped()
                self._guard(principal, result.citations, seen)
            except Exception as exc:
                if stop is not None and stop() and not isinstance(exc, Abandoned | Withheld):
                    raise Abandoned(GONE) from exc
                raise
        except InputError as exc:
            self._rejected(principal, exchange.channel, exchange.question, exc)
            raise
        except Exception as exc:
            self._failed(principal, exchange, exc, shown)
            raise
        record = self.audit.append(answer_event(principal, exchange, result))
        if exchange.conversation_id is not None:
            self.conversations.add_turn(principal.user_id, exchange.conversation_id,
                                        exchange.question,
                                        turn_json(result, exchange.conversation_id,
                                                  record.record_id))
        return Reply(result, record.record_id, record.seq, exchange.conversation_id)

    def _guard(self, principal: Principal, citations: Sequence[Citation],
               seen: dict[str, bool]) -> None:
        """Check again, outside the search, that every cited document is one the asker may
        read. The search filters inside the query; this makes a fault there an error
        instead of a leak."""
        for doc_id in {c.doc_id for c in citations} - seen.keys():
            info = self.registry.get(doc_id)
            seen[doc_id] = info is not None and principal.may_read(info.groups)
            if not seen[doc_id]:
                log.error("an answer cited document %s that %s may not read; withheld",
                          doc_id, principal.user_id)
                raise Withheld("the answer was withheld: it failed an access check")

    def abandoned(self, principal: Principal, exchange: Exchange) -> None:
        """The reader went away before the answer's work began."""
        self._failed(principal, exchange, Abandoned(GONE), ())

    # -- on the record ---------------------------------------------------------------------

    def _failed(self, principal: Principal, exchange: Exchange, exc: BaseException,
                shown: Sequence[str]) -> None:
        try:
            self.audit.append(failure_event(principal, exchange, exc, shown,
                                            withheld=isinstance(exc, Withheld)))
        except Exception:
            # The original error is what the caller must see; this one goes to the log.
            log.exception("could not record a failed answer in the audit trail")

    def _rejected(self, principal: Principal, channel: str, question: str,
                  exc: InputError) -> None:
        try:
            self.audit.append(rejection_event(principal, channel, question, exc))
        except Exception:
            log.exception("could not record a refused question in the audit trail")


def turn_json(answer: Answer, conversation_id: str, audit_id: str) -> dict[str, Any]:
    """A turn as it is stored: the reply as given, each citation with its source and the
    display name employees see (the edge shows one or the other)."""
    return {
        "conversation_id": conversation_id, "answer": answer.text, "outcome": answer.outcome,
        "refused": answer.refused, "model": answer.model, "timings": dict(answer.timings),
        "audit_id": audit_id,
        "citations": [{"n": c.n, "chunk_id": c.chunk_id, "doc_id": c.doc_id,
                       "version": c.version, "source": c.source, "display": c.display,
                       "page": c.page, "quote": c.quote, "start": c.start, "end": c.end,
                       "supported": c.supported, "ocr": c.ocr} for c in answer.citations],
    }


def readable_turns(registry: Registry, principal: Principal,
                   turns: Sequence[StoredTurn]) -> list[StoredTurn]:
    """Stored turns as the caller may see them now, checked on read as cited text is.

    A turn citing a document the caller can no longer read (their groups changed, or the
    document's), or one that no longer exists, keeps its question but not its answer or
    citations, and says so.
    """
    verdicts: dict[str, bool] = {}

    def may_read(doc_id: str) -> bool:
        if doc_id not in verdicts:
            info = registry.get(doc_id)
            verdicts[doc_id] = (info is not None and info.active_version is not None
                                and principal.may_read(info.groups))
        return verdicts[doc_id]

    out = []
    for turn in turns:
        if all(may_read(d) for d in turn.cited_documents()):
            out.append(turn)
            continue
        answer = {**turn.answer, "answer": WITHHELD, "citations": [], "withheld": True}
        out.append(replace(turn, answer=answer))
    return out
