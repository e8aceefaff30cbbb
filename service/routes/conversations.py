"""Conversations: persisted chats whose follow-up questions are rewritten into standalone ones before retrieval."""

from __future__ import annotations

from typing import Any, Iterator

from fastapi import APIRouter, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from service.answer import AnswerEvent, AskRequest
from service.auth import Principal
from service.context import ServiceContext, get_context, get_principal
from service.routes.ask import ERRORS, SSE_DOC, answer_response, record, sse_response, to_filters
from service.schemas import COLLECTION_NAME, AskResponse, Filters, Problem

router = APIRouter(prefix="/v1", tags=["conversations"])
NOT_FOUND = {404: {"model": Problem, "description": "Unknown conversation"}}


class ConversationCreate(BaseModel):
    """A new conversation over one collection."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"collection": "default", "title": "Atlas questions"}]})

    collection: str | None = Field(None, pattern=COLLECTION_NAME, description="Default: DOCQA_DEFAULT_COLLECTION (`default`).")
    title: str = Field("", max_length=200)


class Message(BaseModel):
    """One turn's half: the user's question or the assistant's answer (with its citations)."""

    id: int
    role: str
    content: str
    citations: list[dict[str, Any]] | None = None
    abstained: bool | None = None
    reason: str | None = None
    rewritten_question: str | None = None
    answer_id: str | None = Field(None, description="An answer's id, to rate it (POST /v1/answers/{answer_id}/feedback).")
    created_at: float


class ConversationSummary(BaseModel):
    """A conversation without its messages."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "9c1f0e2a7b3d4c5e", "collection": "default", "title": "How many GPUs was Atlas trained on?", "created_at": 1764158400.0, "updated_at": 1764158460.0}]})

    id: str
    collection: str
    title: str
    created_at: float
    updated_at: float


class Conversation(ConversationSummary):
    """A conversation with its messages, oldest first."""

    messages: list[Message] = Field(default_factory=list)


class MessageCreate(BaseModel):
    """A question in a conversation; follow-ups may lean on earlier turns."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"content": "and for how many days?", "stream": True}]})

    content: str = Field(min_length=1, max_length=100_000)
    stream: bool = True
    generator: str | None = None
    top_k: int | None = Field(None, ge=1, le=1000)
    filters: Filters | None = None


def _owner(principal: Principal) -> str | None:
    return principal.key_id


@router.post("/conversations", response_model=Conversation, status_code=201, responses={404: {"model": Problem, "description": "Unknown collection"}},
             summary="Start a conversation")
def create(body: ConversationCreate, ctx: ServiceContext = Depends(get_context), principal: Principal = Depends(get_principal)) -> dict[str, Any]:
    """A new, empty conversation over a collection the caller may read."""
    collection = ctx.collection(body.collection, principal)
    return ctx.conversations.create(collection.name, body.title, _owner(principal))


@router.get("/conversations", response_model=list[ConversationSummary], summary="List conversations")
def list_conversations(collection: str | None = None,
                       limit: int = Query(50, ge=1, le=500, description="At most this many conversations."),
                       offset: int = Query(0, ge=0, le=2**63 - 1,  # SQL's BIGINT
                                                    description="Skip this many (the next page: offset + limit)."),
                       ctx: ServiceContext = Depends(get_context),
                       principal: Principal = Depends(get_principal)) -> list[dict[str, Any]]:
    """The caller's conversations, newest first, a page at a time (optionally of one collection)."""
    return ctx.conversations.list(collection, _owner(principal), principal.collections, limit, offset)


@router.get("/conversations/{conversation_id}", response_model=Conversation, responses=NOT_FOUND, summary="Get a conversation")
def get(conversation_id: str, ctx: ServiceContext = Depends(get_context), principal: Principal = Depends(get_principal)) -> dict[str, Any]:
    """A conversation with every message."""
    conversation = ctx.conversations.get(conversation_id, _owner(principal))
    principal.require_read(conversation["collection"])
    return conversation


@router.delete("/conversations/{conversation_id}", status_code=204, responses=NOT_FOUND, summary="Delete a conversation")
def delete(conversation_id: str, ctx: ServiceContext = Depends(get_context), principal: Principal = Depends(get_principal)) -> Response:
    """Delete a conversation and its messages."""
    ctx.conversations.delete(conversation_id, _owner(principal))
    return Response(status_code=204)


def _saving(ctx: ServiceContext, conversation_id: str, question: str, rewritten: str, events: Iterator[AnswerEvent]) -> Iterator[AnswerEvent]:
    """Pass events through; when the answer is done, save the turn."""
    for event in events:
        if event.kind == "done":
            ctx.conversations.add_turn(conversation_id, question, rewritten, answer_response(event.data, rewritten).model_dump())
        yield event


@router.post("/conversations/{conversation_id}/messages", response_model=AskResponse, responses={**ERRORS, **NOT_FOUND, **SSE_DOC},
             summary="Ask in a conversation (SSE like /v1/ask)")
async def post_message(conversation_id: str, body: MessageCreate, ctx: ServiceContext = Depends(get_context),
                       principal: Principal = Depends(get_principal)) -> Any:
    """Rewrite a follow-up into a standalone question, answer it, save the turn."""
    conversation = await run_in_threadpool(ctx.conversations.get, conversation_id, _owner(principal))
    collection = await run_in_threadpool(ctx.collection, conversation["collection"], principal)
    previous = await run_in_threadpool(ctx.conversations.standalone_questions, conversation_id)
    rewritten = await run_in_threadpool(ctx.answerer.rewrite, body.content, previous, body.generator)
    request = AskRequest(rewritten, collection, body.top_k, to_filters(body.filters), body.generator)
    await run_in_threadpool(ctx.answerer.check, request)
    answering = ctx.answers.recording(ctx.answerer.stream(request), collection.name, principal, "conversation", body.content)
    events = _saving(ctx, conversation_id, body.content, rewritten, answering)
    if body.stream:
        return sse_response(ctx, events, rewritten)
    done = [e for e in await run_in_threadpool(list, events) if e.kind == "done"]
    record(ctx, done[0].data)
    return answer_response(done[0].data, rewritten)
