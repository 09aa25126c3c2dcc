"""OpenAI-compatible chat completions, so the openai package or Open WebUI can talk to enclave.

Content is the verified answer (what verification kept) followed by a sources list; the
citations also come in an extra ``citations`` field, the outcome in ``outcome``. Streaming
sends each sentence once it is verified, then the rest of that same content: never the
model's raw tokens, which may hold sentences verification drops.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from core.errors import InputError
from core.types import Answer
from serve.answering.exchange import NOT_STREAMED, VERIFIED_SENTENCES
from serve.http import streaming
from serve.http.deps import GateDep, PrincipalDep, ServiceDep
from serve.http.schemas import ChatMessage, CitationOut, CleanStr, shown_source

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["openai-compatible"])
MODEL_ID = "enclave"


class CompletionRequest(BaseModel):
    # Clients send many OpenAI options (temperature, top_p, ...); they do not apply here.
    model_config = ConfigDict(extra="ignore")

    model: CleanStr = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1, max_length=100)
    stream: bool = False


@router.get("/models")
def models(_: PrincipalDep) -> dict[str, Any]:
    return {"object": "list",
            "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "enclave"}]}


@router.post("/chat/completions")
async def completions(body: CompletionRequest, request: Request, principal: PrincipalDep,
                      service: ServiceDep, gate: GateDep) -> Any:
    if body.messages[-1].role != "user":
        raise InputError("messages must end with a user message")
    question, history = streaming.from_messages(body.messages)
    exchange = await run_in_threadpool(
        lambda: service.prepare(principal, question, history, None, channel="openai",
                                streaming=VERIFIED_SENTENCES if body.stream else NOT_STREAMED))
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    paths = principal.sees_paths
    if not body.stream:
        reply = await streaming.answer(service, gate, principal, exchange, request)
        answer = reply.answer
        return {
            "id": completion_id, "object": "chat.completion", "created": int(time.time()),
            # One name on every route (/v1/models, streams): the model that wrote the answer
            # (or none, when nothing was relevant and no model ran) is answer_model.
            "model": MODEL_ID, "answer_model": answer.model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content_of(answer, paths)}}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "citations": _citations(answer, paths), "outcome": answer.outcome,
            "refused": answer.refused, "audit_id": reply.audit_id,
        }
    run = streaming.stream(service, gate, principal, exchange, tokens=False)

    async def chunks() -> AsyncIterator[dict[str, str]]:
        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, str]:
            data = {"id": completion_id, "object": "chat.completion.chunk",
                    "created": int(time.time()), "model": MODEL_ID,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
            return {"data": _json(data)}

        yield chunk({"role": "assistant", "content": ""})
        sent = ""  # each verified sentence goes out as it comes; the rest with the answer
        async for kind, value in run.events():
            if kind == "sentence":
                piece = value.text if not sent else " " + value.text
                sent += piece
                yield chunk({"content": piece})
            elif kind == "answer":
                content = content_of(value.answer, paths)
                if not content.startswith(sent):  # cannot happen: the answer is its sentences
                    log.error("a streamed answer's sentences are not the start of its content")
                for piece in _pieces(content[len(sent):]) if content.startswith(sent) else []:
                    yield chunk({"content": piece})
                yield chunk({}, "stop", citations=_citations(value.answer, paths),
                            outcome=value.answer.outcome, refused=value.answer.refused,
                            audit_id=value.audit_id, answer_model=value.answer.model)
            elif kind == "error":
                yield {"data": _json({"error": streaming.error_body(value)})}
        yield {"data": "[DONE]"}

    return streaming.AnswerStream(chunks(), run)


def content_of(answer: Answer, paths: bool = False) -> str:
    # A refusal's text lists the closest passages already.
    if not answer.citations or answer.refused:
        return answer.text
    lines = [answer.text, "", "Sources:"]
    for c in answer.citations:
        page = f", page {c.page}" if c.page else ""
        source = c.source if paths else shown_source(c)
        lines.append(f'[{c.n}] {source}{page}: "{" ".join(c.quote.split())}"')
    return "\n".join(lines)


def _citations(answer: Answer, paths: bool) -> list[dict[str, Any]]:
    return [CitationOut.of(c, paths).model_dump() for c in answer.citations]


def _pieces(text: str, size: int = 64) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _json(data: Any) -> str:
    import json

    return json.dumps(data)
