"""ASGI middleware: request ids and access logs, body-size limits, and a concurrency limit that sheds load."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from typing import Any, Awaitable, Callable, Sequence

from fastapi.routing import iter_route_contexts
from opentelemetry import trace
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match

from service.errors import Overloaded, PayloadTooLarge
from service.logs import request_id_var
from service.metrics import Metrics
from service.problems import logged_problem, problem_for, problem_headers
from service.tracing import REQUEST_ID

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("docqa.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_UNLIMITED = ("/healthz", "/readyz", "/metrics")


async def _send_problem(send: Send, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(k.lower().encode(), v.encode()) for k, v in problem_headers(body["status"]).items()]
    await send({"type": "http.response.start", "status": body["status"],
                "headers": [(b"content-type", b"application/problem+json"), (b"content-length", str(len(data)).encode()), *headers]})
    await send({"type": "http.response.body", "body": data})


class RequestContextMiddleware:
    """Accepts X-Request-ID (or makes one), echoes it, logs each request as a JSON line, counts it."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes  # to name the route of a request answered before routing (shed: 503)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        trace.get_current_span().set_attribute(REQUEST_ID, request_id)  # the server span (spans after: RequestIdStamp)
        started = time.perf_counter()
        status = 500

        status_sent = False

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status, status_sent
            if message["type"] == "http.response.start":
                status = message["status"]
                status_sent = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Answer here, while the request id is still set: Starlette's own error middleware runs outside us.
            body = logged_problem(exc)
            if status_sent is False:
                await _send_problem(send_with_id, body)
            else:
                raise
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or _template(scope, self.routes)
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route, scope["method"]).observe(elapsed)
            log.info("request", extra={"method": scope["method"], "path": scope["path"], "route": route,
                                       "status": status, "ms": round(elapsed * 1000, 2)})
            request_id_var.reset(token)


def _template(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The path template of the route a request was for, found by matching (a request the router never saw:
    shed, or refused for its size); "unmatched" where no route takes its path."""
    partial = None
    for route in iter_route_contexts(routes):  # FastAPI's routes as matched, included routers flattened
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path", "unmatched")
        if match is Match.PARTIAL and partial is None:
            partial = getattr(route, "path", None)
    return partial or "unmatched"


class BodyLimitMiddleware:
    """Refuses bodies over the limit with 413: early by Content-Length, else while reading."""

    def __init__(self, app: ASGIApp, default_limit: int, upload_limit: int) -> None:
        self.app = app
        self.default_limit = default_limit
        self.upload_limit = upload_limit

    def limit_for(self, scope: Scope) -> int:
        """Uploads get the upload limit; everything else the request limit."""
        return self.upload_limit if scope["path"].endswith("/documents") else self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _send_problem(send, problem_for(PayloadTooLarge(f"request body is {int(length)} bytes; the limit is {limit}")))
            return
        seen = 0

        async def counting_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # FastAPI turns other errors raised while reading a body into 400; this one passes through.
                    raise HTTPException(413, f"request body exceeds the limit of {limit} bytes")
            return message

        await self.app(scope, counting_receive, send)


_ANSWER_PATHS = re.compile(r"^/v1/(ask|chat/completions|conversations/[^/]+/messages)$")


class Gate:
    """At most `slots` holders at once; up to `queue` more wait their turn (first come, first served) for at
    most `timeout` seconds. `enter` returns False, at once or after the wait, when there is no room."""

    def __init__(self, slots: int, queue: int, timeout: float) -> None:
        self.slots = slots
        self.queue = queue
        self.timeout = timeout
        self._free = asyncio.Semaphore(slots)
        self.waiting = 0
        self.held = 0

    async def enter(self) -> bool:
        if not self._free.locked():  # a free slot and nobody ahead: take it without waiting
            await self._free.acquire()
            self.held += 1
            return True
        if self.waiting >= self.queue:
            return False
        self.waiting += 1
        try:
            await asyncio.wait_for(self._free.acquire(), self.timeout)
            self.held += 1
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            self.waiting -= 1

    def leave(self) -> None:
        self.held -= 1
        self._free.release()


class ConcurrencyLimitMiddleware:
    """A bounded queue in front of the API: past `limit` requests in flight, requests wait (at most `queue`
    of them, at most `queue_seconds` each); past that, 503 with Retry-After instead of queueing without bound.

    Answers (retrieval + evidence scoring or an LLM) cost ten times a search, so they queue apart, for a
    slot of their own, before taking one of the shared slots: a burst of questions then waits its turn
    without starving searches and the rest of the API.
    """

    def __init__(
        self, app: ASGIApp, limit: int, metrics: Metrics, answer_limit: int | None = None,
        queue: int = 0, queue_seconds: float = 0.0,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.requests = Gate(limit, queue, queue_seconds)
        self.answers = Gate(answer_limit or limit, queue, queue_seconds)
        metrics.queues = {"requests": self.requests, "answers": self.answers}  # read at each scrape

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _UNLIMITED or scope["path"].startswith(("/static", "/assets")):
            await self.app(scope, receive, send)
            return
        answer = scope["method"] == "POST" and bool(_ANSWER_PATHS.match(scope["path"]))
        if answer and not await self.answers.enter():
            await self._shed(send, "answers", f"{self.answers.slots} answers in flight and {self.answers.queue} waiting")
            return
        try:
            if not await self.requests.enter():
                await self._shed(send, "requests",
                                 f"{self.requests.slots} requests in flight and {self.requests.queue} waiting")
                return
            try:
                await self.app(scope, receive, send)
            finally:
                self.requests.leave()
        finally:
            if answer:
                self.answers.leave()

    async def _shed(self, send: Send, queue: str, what: str) -> None:
        self.metrics.rejected.labels(queue).inc()
        await _send_problem(send, problem_for(Overloaded(f"{what}; retry shortly")))
