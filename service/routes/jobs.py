"""Ingestion jobs: GET /v1/jobs (recent ones, a page at a time) and GET /v1/jobs/{id} (state and per-file results)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from service.auth import Principal
from service.context import ServiceContext, get_context, get_principal
from service.schemas import COLLECTION_NAME, JobOut, JobSummary, Problem

router = APIRouter(prefix="/v1", tags=["collections"])


@router.get("/jobs", response_model=list[JobSummary], summary="Recent ingestion jobs",
            responses={401: {"model": Problem, "description": "No or invalid key"}})
def list_jobs(collection: str | None = Query(None, pattern=COLLECTION_NAME, description="Only this collection's jobs."),
              limit: int = Query(20, ge=1, le=200, description="At most this many jobs."),
              offset: int = Query(0, ge=0, le=2**63 - 1,  # SQL's BIGINT
                                  description="Skip this many (the next page: offset + limit)."),
              ctx: ServiceContext = Depends(get_context),
              principal: Principal = Depends(get_principal)) -> list[dict[str, Any]]:
    """Jobs of the collections the caller may read, newest first, with their files counted by status
    (a collection it may not read lists none, as a missing one does)."""
    readable = principal.collections
    if collection is not None:
        readable = {collection} if principal.can_read(collection) else set()
    return ctx.jobs.list(readable, limit, offset)


@router.get("/jobs/{job_id}", response_model=JobOut, responses={404: {"model": Problem, "description": "Unknown job"}},
            summary="An ingestion job's state and per-file results")
def get_job(job_id: str, ctx: ServiceContext = Depends(get_context), principal: Principal = Depends(get_principal)) -> dict[str, Any]:
    """queued, running, succeeded or failed, with each file's outcome and reason."""
    job = ctx.jobs.get(job_id)
    principal.require_read(job["collection"])
    return job
