"""Answers as they were given, and feedback on them: GET /v1/answers/{id}, POST /v1/answers/{id}/feedback."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.concurrency import run_in_threadpool

from service.auth import Principal
from service.context import ServiceContext, get_context, get_principal
from service.schemas import AnswerRecordOut, FeedbackBody, FeedbackOut, Problem

router = APIRouter(prefix="/v1", tags=["feedback"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Unknown answer, or one of a collection the key may not read"},
}


def feedback_out(answer_id: str, stored: dict[str, Any]) -> FeedbackOut:
    """A stored rating as the API shows it (the rater '' is no key: auth was off)."""
    return FeedbackOut(answer_id=answer_id, rating=stored["rating"], comment=stored["comment"],
                       key_id=stored["rater"] or None, created_at=stored["created_at"], updated_at=stored["updated_at"])


@router.get("/answers/{answer_id}", response_model=AnswerRecordOut, responses=NOT_FOUND, summary="An answer as it was given, with its ratings")
async def get_answer(answer_id: str, ctx: ServiceContext = Depends(get_context),
                     principal: Principal = Depends(get_principal)) -> AnswerRecordOut:
    """The recorded question, answer, citations and ratings of an answer from a collection the caller may read."""
    answer = await run_in_threadpool(ctx.answers.get, answer_id, principal)
    return AnswerRecordOut(**{**answer, "feedback": [feedback_out(answer_id, f) for f in answer["feedback"]]})


@router.post("/answers/{answer_id}/feedback", response_model=FeedbackOut, status_code=201,
             responses={**NOT_FOUND, 200: {"model": FeedbackOut, "description": "The key's earlier rating, replaced"},
                        422: {"model": Problem, "description": "A rating other than up or down, or a comment over 2,000 characters"}},
             summary="Rate an answer: thumbs up or down, with an optional comment")
async def rate_answer(answer_id: str, body: FeedbackBody, response: Response, ctx: ServiceContext = Depends(get_context),
                      principal: Principal = Depends(get_principal)) -> FeedbackOut:
    """Any key that may read the answer's collection may rate it, once: rating again replaces its rating (200),
    the first time creates it (201). `docqa eval qa --feedback` replays the rated questions."""
    stored, first = await run_in_threadpool(ctx.answers.rate, answer_id, principal, body.rating, body.comment)
    response.status_code = 201 if first else 200
    return feedback_out(answer_id, stored)
