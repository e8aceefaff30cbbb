"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.auth import Principal
from service.context import ServiceContext, get_context, get_principal
from service.problems import status_of
from service.schemas import Health

log = logging.getLogger("docqa.service")
router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
def healthz() -> Health:
    """Always ok while the process answers."""
    return Health(status="ok")


@router.get(
    "/readyz", response_model=Health, summary="The index is open and the model loaded",
    responses={503: {"model": Health, "description": "Still loading, or start-up failed"}},
)
def readyz(response: Response, ctx: ServiceContext = Depends(get_context)) -> Health:
    """Ready once the store answers and the default embedder has loaded. Anyone may ask, so a failure is named
    by its kind only; what went wrong (paths, database URLs) goes to the log."""
    checks = {}
    try:
        ctx.store.ping()
        checks["index"] = "ok"
    except Exception as exc:  # noqa: BLE001 - readiness reports, it doesn't raise
        log.warning("readiness: the store does not answer", extra={"error": f"{type(exc).__name__}: {exc}"})
        checks["index"] = f"error: {status_of(exc)[1].lower()}"
    checks["model"] = "ok" if ctx.ready.is_set() else "error: start-up failed" if ctx.startup_error else "loading"
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        response.status_code = 503
    return Health(status="ok" if ok else "not ready", checks=checks)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {"example": "docqa_http_requests_total{route=\"/v1/ask\",method=\"POST\",status=\"200\"} 3.0"}}}})
def metrics(ctx: ServiceContext = Depends(get_context), principal: Principal = Depends(get_principal)) -> Response:
    """Request counts and latencies by route, retrieval and generation time, ingestion counts, index sizes (admin key when auth is on)."""
    principal.require_admin()
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
