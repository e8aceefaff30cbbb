"""GET /v1/jobs/{id}: an ingestion job's state and per-file results."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from service.auth import Principal
from service.context import ServiceContext, get_context, get_principal
from service.schemas import JobOut, Problem

router = APIRouter(prefix="/v1", tags=["collections"])


@router.get("/jobs/{job_id}", response_model=JobOut, responses={404: {"model": Problem, "description": "Unknown job"}},
            summary="An ingestion job's state and per-file results")
def get_job(job_id: str, ctx: ServiceContext = Depends(get_context), principal: Principal = Depends(get_principal)) -> dict[str, Any]:
    """queued, running, succeeded or failed, with each file's outcome and reason."""
    job = ctx.jobs.get(job_id)
    principal.require_read(job["collection"])
    return job
