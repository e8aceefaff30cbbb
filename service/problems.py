"""The one place errors become HTTP: each error class's status and title, and the one problem body builder,
used by the exception handlers, the middleware and the error event that ends a stream."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from indexes.errors import (
    Conflict, DocQAError, EmbedderMismatch, InvalidInput, LimitExceeded, NotFound, ParseError, PluginError,
    SourceUnavailable, StorageError, UnsupportedMediaType,
)
from service.errors import Forbidden, GeneratorUnavailable, Overloaded, PayloadTooLarge, RerankerUnavailable, Unauthorized
from service.logs import request_id_var

log = logging.getLogger("docqa.service")

# Each error class's HTTP status and problem title (the title names the problem type); an error takes the entry
# of its nearest listed class. An HTTP error from Starlette takes the title of the first entry with its status.
STATUSES: dict[type[DocQAError], tuple[int, str]] = {
    InvalidInput: (422, "Invalid input"),
    ParseError: (422, "Document could not be parsed"),
    NotFound: (404, "Not found"),
    Conflict: (409, "Conflict"),
    EmbedderMismatch: (409, "Embedder mismatch"),
    PayloadTooLarge: (413, "Payload too large"),
    LimitExceeded: (413, "Limit exceeded"),
    UnsupportedMediaType: (415, "Unsupported media type"),
    Unauthorized: (401, "Unauthorized"),
    Forbidden: (403, "Forbidden"),
    GeneratorUnavailable: (502, "Generator unavailable"),
    RerankerUnavailable: (502, "Re-ranker unavailable"),
    SourceUnavailable: (502, "Source unavailable"),
    StorageError: (503, "Storage unavailable"),
    Overloaded: (503, "Service overloaded"),
    PluginError: (500, "Plugin unavailable"),
}
INTERNAL = (500, "Internal error")
UNEXPECTED = "an unexpected error occurred; see the server log for this request id"


def status_of(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and problem title an error maps to: its nearest listed class's, else 500."""
    return next((STATUSES[c] for c in type(exc).__mro__ if c in STATUSES), INTERNAL)


def _title_of_status(status: int) -> str:
    listed = next((title for code, title in STATUSES.values() if code == status), None)
    return listed or HTTPStatus(status).phrase.capitalize()


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def problem_body(status: int, title: str, detail: str) -> dict[str, Any]:
    """An RFC 9457 problem body with the request id; every problem docqa sends is built here."""
    return {"type": f"https://docqa.dev/problems/{_slug(title)}", "title": title, "status": status,
            "detail": detail, "request_id": request_id_var.get()}


def problem_headers(status: int) -> dict[str, str]:
    """What a client needs to act on a status: when to retry, how to authenticate."""
    return {503: {"Retry-After": "1"}, 401: {"WWW-Authenticate": "Bearer"}}.get(status, {})


def problem_for(exc: BaseException) -> dict[str, Any]:
    """The problem body for an error; a surprise shows no internals, only where to look."""
    if not isinstance(exc, DocQAError):
        return problem_body(*INTERNAL, UNEXPECTED)
    return problem_body(*status_of(exc), exc.detail)


def logged_problem(exc: BaseException) -> dict[str, Any]:
    """`problem_for`, logging the server's own failures (with the request id, as every log line has it)."""
    body = problem_for(exc)
    if not isinstance(exc, DocQAError):
        log.error("unexpected error", exc_info=exc)
    elif body["status"] >= 500:
        log.warning("request failed", extra={"status": body["status"], "error": type(exc).__name__, "detail": exc.detail})
    return body


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    """A problem body as an `application/problem+json` response."""
    status = body["status"]
    return JSONResponse(body, status_code=status, headers={**problem_headers(status), **(headers or {})},
                        media_type="application/problem+json")


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:10]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error to a problem body; routes have no try/except."""

    @app.exception_handler(DocQAError)
    async def docqa_error(request: Request, exc: DocQAError) -> JSONResponse:
        return problem_response(logged_problem(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(problem_body(422, "Invalid request", _validation_detail(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = problem_body(exc.status_code, _title_of_status(exc.status_code), str(exc.detail))
        return problem_response(body, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(logged_problem(exc))
