"""Employees' routes: chat (streaming or not), their conversations, and cited text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from core.errors import NotFound
from core.types import is_uuid
from serve.answering.exchange import NOT_STREAMED, RAW_TOKENS, VERIFIED_SENTENCES
from serve.answering.service import readable_turns
from serve.http import streaming
from serve.http.deps import ContainerDep, GateDep, PrincipalDep, ServiceDep, SettingsDep
from serve.http.schemas import (
    ChatRequest,
    ChatResponse,
    ChunkOut,
    ConversationDetail,
    ConversationList,
    ConversationOut,
    DocumentOut,
    SentenceOut,
    TurnOut,
)

router = APIRouter(prefix="/v1", tags=["chat"])


@router.post("/chat", response_model=ChatResponse,
             responses={200: {"content": {"text/event-stream": {}}}})
async def chat(body: ChatRequest, request: Request, principal: PrincipalDep,
               service: ServiceDep, gate: GateDep, settings: SettingsDep) -> Any:
    """Ask; with ``stream``: Server-Sent Events, one ``sentence`` as each is verified, then
    ``answer`` (the whole answer, as recorded) or ``error``."""
    if body.messages is not None:
        question, history = streaming.from_messages(body.messages)
    else:
        question, history = body.question or "", ()
    tokens = body.stream and settings.serve.stream_raw_tokens
    mode = (RAW_TOKENS if tokens else VERIFIED_SENTENCES) if body.stream else NOT_STREAMED
    exchange = await run_in_threadpool(
        lambda: service.prepare(principal, question, history, body.conversation_id, store=True,
                                channel="api", streaming=mode))
    conversation_id = exchange.conversation_id
    assert conversation_id is not None
    paths = principal.sees_paths
    if not body.stream:
        reply = await streaming.answer(service, gate, principal, exchange, request)
        return ChatResponse.of(reply.answer, conversation_id, reply.audit_id, paths)
    run = streaming.stream(service, gate, principal, exchange, tokens)

    async def events() -> AsyncIterator[dict[str, str]]:
        async for kind, value in run.events():
            if kind == "sentence":
                yield streaming.event("sentence", SentenceOut.of(value, paths).model_dump())
            elif kind == "token":
                yield streaming.event("token", {"text": value})
            elif kind == "answer":
                body = ChatResponse.of(value.answer, conversation_id, value.audit_id, paths)
                yield streaming.event("answer", body.model_dump(mode="json"))
            else:
                yield streaming.event("error", streaming.error_body(value))

    return streaming.AnswerStream(events(), run)


@router.get("/conversations", response_model=ConversationList)
def conversations(principal: PrincipalDep, container: ContainerDep,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50,
                  offset: Annotated[int, Query(ge=0)] = 0) -> ConversationList:
    """Your conversations, newest first."""
    found = container.conversations.conversations(principal.user_id, limit, offset)
    return ConversationList(conversations=[ConversationOut.of(c) for c in found])


@router.get("/conversations/{conversation_id}", response_model=ConversationDetail)
def conversation_detail(conversation_id: str, principal: PrincipalDep,
                        container: ContainerDep) -> ConversationDetail:
    book = container.conversations
    found = book.owned(principal.user_id, conversation_id)
    turns = readable_turns(container.registry, principal,
                           book.turns(principal.user_id, conversation_id))
    return ConversationDetail(
        **ConversationOut.of(found).model_dump(),
        messages=[TurnOut.of(t, principal.sees_paths) for t in turns],
    )


@router.get("/documents/{doc_id}", response_model=DocumentOut)
def document(doc_id: str, principal: PrincipalDep, container: ContainerDep) -> DocumentOut:
    """A document's metadata, if you may read it (otherwise 404: it does not exist for you)."""
    info = container.registry.get(doc_id)
    if info is None or info.active_version is None or not principal.may_read(info.groups):
        raise NotFound("no such document")  # the id is not echoed: nothing to confirm
    return DocumentOut.of(info, principal.sees_paths)


@router.get("/chunks/{chunk_id}", response_model=ChunkOut)
def chunk(chunk_id: str, principal: PrincipalDep, container: ContainerDep) -> ChunkOut:
    """A cited passage's text, if you may read its document (otherwise 404)."""
    found = container.store.retrieve([chunk_id]) if is_uuid(chunk_id) else []
    info = container.registry.get(found[0].doc_id) if found else None
    if (not found or info is None or info.active_version != found[0].version
            or not principal.may_read(info.groups)):
        raise NotFound("no such chunk")
    return ChunkOut.of(found[0], info, principal.sees_paths)
