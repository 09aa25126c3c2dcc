"""Employees' routes: chat (streaming or not), their conversations, and cited text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from core.errors import NotFound
from core.types import is_uuid
from serve import conversation
from serve.deps import ContainerDep, GateDep, PrincipalDep
from serve.schemas import (
    ChatRequest,
    ChatResponse,
    ChunkOut,
    ConversationDetail,
    ConversationList,
    ConversationOut,
    DocumentOut,
    TurnOut,
)

router = APIRouter(prefix="/v1", tags=["chat"])


@router.post("/chat", response_model=ChatResponse,
             responses={200: {"content": {"text/event-stream": {}}}})
async def chat(body: ChatRequest, request: Request, principal: PrincipalDep,
               container: ContainerDep, gate: GateDep) -> Any:
    """Ask; with ``stream``: Server-Sent Events ``token`` ... then ``answer`` (or ``error``)."""
    exchange = conversation.prepare(container, principal, body.question, body.messages,
                                    body.conversation_id, store=True, channel="api")
    conversation_id = exchange.conversation_id
    assert conversation_id is not None
    if not body.stream:
        reply = await conversation.answer(container, gate, principal, exchange, request)
        return ChatResponse.of(reply.answer, conversation_id, reply.audit_id,
                               principal.sees_paths)
    run = conversation.stream(container, gate, principal, exchange)

    async def events() -> AsyncIterator[dict[str, str]]:
        async for kind, value in run.events():
            if kind == "token":
                yield conversation.event("token", {"text": value})
            elif kind == "answer":
                body = ChatResponse.of(value.answer, conversation_id, value.audit_id,
                                       principal.sees_paths)
                yield conversation.event("answer", body.model_dump(mode="json"))
            else:
                yield conversation.event("error", conversation.error_body(value))

    return conversation.AnswerStream(events(), run)


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
    turns = conversation.readable_turns(container.registry, principal,
                                        book.turns(principal.user_id, conversation_id))
    return ConversationDetail(
        **ConversationOut.of(found).model_dump(),
        messages=[TurnOut.of(t) for t in turns],
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
