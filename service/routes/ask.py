"""POST /v1/ask (JSON or Server-Sent Events) and POST /v1/search."""

from __future__ import annotations

from typing import Any, Iterator

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from sse_starlette.sse import EventSourceResponse

from indexes.locators import locator_label
from indexes.types import Hit
from service.answer import Answer, AnswerEvent, AskRequest
from service.auth import Principal
from service.context import ServiceContext, get_context, get_principal
from service.generators.base import Passage
from service.schemas import AskBody, AskResponse, Citation, Filters, Problem, SearchBody, SearchHit, SearchResponse
from service.streaming import sse_events

router = APIRouter(prefix="/v1", tags=["questions"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Unknown collection"},
    422: {"model": Problem, "description": "Invalid request or filter"},
    502: {"model": Problem, "description": "The generator failed"},
    503: {"model": Problem, "description": "Overloaded; retry after the given seconds"},
}

SSE_DOC = {
    200: {
        "description": "JSON answer, or with `stream: true` Server-Sent Events: `citations`, `token`..., then `done` or `error`.",
        "content": {"text/event-stream": {"example": 'event: citations\ndata: {"citations": [...]}\n\nevent: token\ndata: {"text": "The staging"}\n\nevent: done\ndata: {"answer": "...", "abstained": false, "warnings": [], "answer_id": "ans_5b0e3c9a1f7d4e2b8c6a0d13"}\n\n'}},
    }
}


def to_filters(filters: Filters | None) -> Filters:
    """The request's filters (none: no restriction)."""
    return filters or Filters()


def citation(p: Passage, answer: Answer | None = None) -> Citation:
    """A passage as the API shows it, with whether and how well the answer cites it."""
    cited = answer is not None and p.n in answer.cited
    verified = answer.verified if cited and answer else None
    return Citation(
        n=p.n, document_id=p.document_id, title=p.title, source=p.source, page=p.page,
        locator=p.locator, locator_label=p.where, ocr=p.ocr,
        heading_path=list(p.heading_path), text=p.text, score=p.score, cited=cited,
        supported=verified.citation_supported.get(p.n) if verified else None,
        support=verified.citation_support.get(p.n) if verified else None, rerank=p.rerank,
    )


def answer_response(answer: Answer, rewritten: str | None = None) -> AskResponse:
    """An Answer as the API returns it."""
    verified = answer.verified
    return AskResponse(
        answer=answer.text, citations=[citation(p, answer) for p in answer.passages], abstained=answer.abstained,
        reason=answer.reason, answer_support=verified.answer_support if verified else None,
        unsupported_claims=verified.unsupported_claims if verified else [], generator=answer.generator,
        rewritten_question=rewritten, timings=answer.timings, warnings=answer.warnings, answer_id=answer.id,
    )


def shape_event(event: AnswerEvent, rewritten: str | None = None) -> tuple[str, Any]:
    """An AnswerEvent as an SSE (event name, data)."""
    if event.kind == "citations":
        return "citations", {"citations": [citation(p).model_dump() for p in event.data], "rewritten_question": rewritten}
    if event.kind == "token":
        return "token", {"text": event.data}
    return "done", answer_response(event.data, rewritten).model_dump()


def record(ctx: ServiceContext, answer: Answer) -> None:
    """Retrieval (per stage too) and generation times into the metrics."""
    ctx.metrics.observe_retrieval(answer.timings)
    if "generation_ms" in answer.timings:
        ctx.metrics.generation.labels(answer.generator).observe(answer.timings["generation_ms"] / 1000)


def sse_response(ctx: ServiceContext, events: Iterator[AnswerEvent], rewritten: str | None = None) -> EventSourceResponse:
    """Stream answer events as SSE, recording metrics when the answer is done."""

    def shaped(event: AnswerEvent) -> tuple[str, Any]:
        if event.kind == "done":
            record(ctx, event.data)
        return shape_event(event, rewritten)

    return EventSourceResponse(sse_events(events, shaped), ping=15)


@router.post("/ask", response_model=AskResponse, responses={**ERRORS, **SSE_DOC}, summary="Answer a question with citations")
async def ask(body: AskBody, ctx: ServiceContext = Depends(get_context), principal: Principal = Depends(get_principal)) -> Any:
    """Retrieve, generate, verify citations; abstain when the documents hold no answer."""
    collection = await run_in_threadpool(ctx.collection, body.collection, principal)
    request = AskRequest(body.question, collection, body.top_k, to_filters(body.filters), body.generator, body.mode)
    await run_in_threadpool(ctx.answerer.check, request)
    if body.stream:
        return sse_response(ctx, ctx.answers.recording(ctx.answerer.stream(request), collection.name, principal, "ask"))
    answer = await run_in_threadpool(ctx.answerer.ask, request)
    record(ctx, answer)
    await run_in_threadpool(ctx.answers.record, answer, collection.name, principal, "ask")
    return answer_response(answer)


def hit_out(hit: Hit) -> SearchHit:
    """A Hit as the API shows it."""
    return SearchHit(
        chunk_id=hit.chunk_id, document_id=hit.document_id, title=hit.title, source=hit.source, page=hit.page_start,
        page_end=hit.page_end, heading_path=list(hit.heading_path), text=hit.text, score=hit.score, scores=hit.scores,
        locator=hit.locator, locator_label=locator_label(hit.locator), ocr=hit.ocr,
    )


@router.post("/search", response_model=SearchResponse, responses=ERRORS, summary="Ranked passages (dense, lexical or hybrid)")
async def search(body: SearchBody, ctx: ServiceContext = Depends(get_context), principal: Principal = Depends(get_principal)) -> SearchResponse:
    """Search one collection, with the same filters as /v1/ask."""
    collection = await run_in_threadpool(ctx.collection, body.collection, principal)
    request = AskRequest(body.query, collection, body.top_k, to_filters(body.filters), mode=body.mode)
    ctx.answerer.validate(request)
    retrieved = await run_in_threadpool(ctx.answerer.retrieve, request)
    ctx.metrics.observe_retrieval(retrieved.timings)
    return SearchResponse(query=body.query, mode=body.mode or ctx.settings.retrieval.mode,
                          hits=[hit_out(h) for h in retrieved.hits], timings=retrieved.timings, warnings=retrieved.warnings)
