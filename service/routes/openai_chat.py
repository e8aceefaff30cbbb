"""An OpenAI-compatible face: POST /v1/chat/completions and GET /v1/models, one model per collection."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, AsyncIterator, Iterator, Literal

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse

from indexes.errors import InvalidInput
from service.answer import Answer, AnswerEvent, AskRequest
from service.auth import Principal
from service.chat import rewrite_follow_up
from service.context import ServiceContext, get_context, get_principal
from service.routes.ask import ERRORS, citation, record
from service.streaming import sse_events

router = APIRouter(prefix="/v1", tags=["openai-compatible"])
MODEL_PREFIX = "docqa:"


class ChatMessage(BaseModel):
    """One chat message; content may be a string or OpenAI's list of text parts."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text."""
        if isinstance(self.content, list):
            return " ".join(str(p.get("text", "")) for p in self.content if isinstance(p, dict))
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's request docqa uses; other fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{"model": "docqa:default", "messages": [{"role": "user", "content": "How many nodes does the staging cluster have?"}], "stream": False}]})

    model: str = Field(examples=["docqa:default"])
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


class ModelCard(BaseModel):
    """A model: one per collection."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "docqa"


class ModelList(BaseModel):
    """The models the caller may use."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"object": "list", "data": [{"id": "docqa:default", "object": "model", "created": 1764158400, "owned_by": "docqa"}]}]})

    object: Literal["list"] = "list"
    data: list[ModelCard]


@router.get("/models", response_model=ModelList, summary="Models (one per collection), OpenAI-style")
def models(ctx: ServiceContext = Depends(get_context), principal: Principal = Depends(get_principal)) -> ModelList:
    """`docqa:<collection>` for every collection the caller may read."""
    cards = [ModelCard(id=MODEL_PREFIX + c.name, created=int(c.created_at))
             for c in ctx.store.list_collections() if principal.can_read(c.name)]
    return ModelList(data=cards)


def sources_block(answer: Answer) -> str:
    """A plain-text "Sources:" block, so clients that ignore extra fields still show where the answer came from."""
    lines = []
    for p in answer.passages:
        if p.n in answer.cited or answer.abstained:
            where = f", {p.where}" if p.where else ""
            lines.append(f"[{p.n}] {p.title}{where} — {p.source}")
    return "\n\nSources:\n" + "\n".join(lines) if lines else ""


def _content(answer: Answer) -> str:
    if answer.abstained:
        return f"Not found in the documents: {answer.reason}."
    return answer.text


def _sources(answer: Answer) -> list[dict[str, Any]]:
    return [citation(p, answer).model_dump() for p in answer.passages]


def completion_id() -> str:
    """A completion's id; the answer is recorded under the same id, so it rates the answer too."""
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def _completion(completion: str, model: str, answer: Answer) -> dict[str, Any]:
    text = _content(answer) + sources_block(answer)
    return {
        "id": completion, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "sources": _sources(answer), "abstained": answer.abstained, "warnings": answer.warnings, "answer_id": answer.id,
    }


def _chunk(completion_id: str, model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


async def _stream(ctx: ServiceContext, completion_id: str, model: str,
                  events: Iterator[AnswerEvent]) -> AsyncIterator[dict[str, str]]:
    """OpenAI's streaming shape: role chunk, content chunks, a final chunk with the sources, then [DONE]."""
    yield {"data": json.dumps(_chunk(completion_id, model, {"role": "assistant", "content": ""}))}

    def shape(event: AnswerEvent) -> tuple[str, Any]:
        if event.kind == "token":
            return "message", _chunk(completion_id, model, {"content": event.data})
        if event.kind == "done":
            record(ctx, event.data)
            answer = event.data
            tail = sources_block(answer) if not answer.abstained else _content(answer) + sources_block(answer)
            return "message", _chunk(completion_id, model, {"content": tail}, "stop", sources=_sources(answer),
                                    abstained=answer.abstained, warnings=answer.warnings, answer_id=answer.id)
        return "skip", None

    async for item in sse_events(events, shape):
        if item["event"] == "skip":
            continue
        yield {"data": item["data"]} if item["event"] == "message" else item
    yield {"data": "[DONE]"}


COMPLETION_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A chat.completion, or with `stream: true` chat.completion.chunk events ending in `[DONE]`.",
        "content": {
            "application/json": {"example": {
                "id": "chatcmpl-3f2a9c0e6b1d4e8f", "object": "chat.completion", "created": 1764158400, "model": "docqa:default",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "The staging cluster has 12 nodes [1]."},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                "sources": [{"n": 1, "document_id": 3, "title": "Northwind Engineering Handbook", "source": "handbook.md", "page": None,
                             "heading_path": ["Infrastructure"], "text": "The staging cluster has 12 nodes.", "score": 0.032,
                             "cited": True, "supported": True, "support": 1.0, "rerank": 0.91}],
                "abstained": False, "warnings": [], "answer_id": "chatcmpl-3f2a9c0e6b1d4e8f",
            }},
            "text/event-stream": {"example": 'data: {"object": "chat.completion.chunk", "choices": [{"delta": {"content": "The staging"}}]}\n\ndata: {"object": "chat.completion.chunk", "choices": [{"delta": {"content": ""}, "finish_reason": "stop"}], "sources": [...], "abstained": false, "warnings": [], "answer_id": "chatcmpl-3f2a9c0e6b1d4e8f"}\n\ndata: [DONE]\n\n'},
        },
    }
}


@router.post("/chat/completions", responses={**ERRORS, **COMPLETION_DOC}, summary="OpenAI-compatible chat completions over a collection")
async def chat_completions(body: ChatCompletionRequest, ctx: ServiceContext = Depends(get_context),
                           principal: Principal = Depends(get_principal)) -> Any:
    """`model` is `docqa:<collection>`; the last user message is the question, earlier ones make follow-ups standalone."""
    if not body.model.startswith(MODEL_PREFIX):
        raise InvalidInput(f"model must be '{MODEL_PREFIX}<collection>', got {body.model!r}")
    collection = await run_in_threadpool(ctx.collection, body.model[len(MODEL_PREFIX):], principal)
    users = [m.text() for m in body.messages if m.role == "user"]
    if not users or not users[-1].strip():
        raise InvalidInput("the last user message must hold a question")
    history: list[str] = []
    for earlier in users[:-1]:  # each earlier question in its standalone form, so follow-ups can chain
        history.append(rewrite_follow_up(earlier, history))
    rewritten = await run_in_threadpool(ctx.answerer.rewrite, users[-1], history)
    request = AskRequest(rewritten, collection)
    await run_in_threadpool(ctx.answerer.check, request)
    completion = completion_id()
    if body.stream:
        events = ctx.answers.recording(ctx.answerer.stream(request), collection.name, principal, "chat-completions",
                                       users[-1], completion)
        return EventSourceResponse(_stream(ctx, completion, body.model, events), ping=15)
    answer = await run_in_threadpool(ctx.answerer.ask, request)
    record(ctx, answer)
    await run_in_threadpool(ctx.answers.record, answer, collection.name, principal, "chat-completions", users[-1], completion)
    return _completion(completion, body.model, answer)
