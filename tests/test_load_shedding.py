"""The bounded queue in front of the API: requests past the in-flight limit wait their turn, a bounded
number of them for a bounded time; past that, 503 with Retry-After. Answers queue apart."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from service.metrics import Metrics
from service.middleware import ConcurrencyLimitMiddleware


class SlowApp:
    """An ASGI app that holds each request until released, and records how many ran at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.release = asyncio.Event()

    async def __call__(self, scope, receive, send) -> None:
        if scope["path"] == "/healthz":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": scope["path"].encode()})


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def _started(n: int, app: SlowApp) -> None:
    for _ in range(200):
        if app.running >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{n} requests never ran at once (ran: {app.running})")


def test_requests_past_the_limit_wait_in_the_queue_and_all_succeed() -> None:
    async def main() -> None:
        inner = SlowApp()
        app = ConcurrencyLimitMiddleware(inner, limit=2, metrics=Metrics(), queue=3, queue_seconds=5)
        async with client_for(app) as http:
            calls = [asyncio.create_task(http.get(f"/v1/collections/{i}")) for i in range(5)]
            await _started(2, inner)
            await asyncio.sleep(0.1)
            assert inner.running == 2 and app.requests.waiting == 3
            inner.release.set()
            responses = await asyncio.gather(*calls)
        assert [r.status_code for r in responses] == [200] * 5 and inner.most == 2

    asyncio.run(main())


def test_past_the_limit_and_a_full_queue_the_service_answers_503_with_retry_after() -> None:
    async def main() -> None:
        inner = SlowApp()
        metrics = Metrics()
        app = ConcurrencyLimitMiddleware(inner, limit=1, metrics=metrics, queue=1, queue_seconds=5)
        async with client_for(app) as http:
            first = asyncio.create_task(http.get("/v1/collections"))
            await _started(1, inner)
            queued = asyncio.create_task(http.get("/v1/collections"))
            await asyncio.sleep(0.05)
            shed = await http.get("/v1/collections")  # the queue holds one already: no room
            health = await http.get("/healthz")  # never limited
            inner.release.set()
            assert (await first).status_code == 200 and (await queued).status_code == 200
        assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
        problem = json.loads(shed.content)
        assert problem["status"] == 503 and "1 requests in flight and 1 waiting" in problem["detail"]
        assert health.status_code == 200
        assert metrics.rejected.labels("requests")._value.get() == 1 and metrics.rejected.labels("answers")._value.get() == 0

    asyncio.run(main())


def test_a_request_that_waits_longer_than_the_queue_allows_gets_503() -> None:
    async def main() -> None:
        inner = SlowApp()
        app = ConcurrencyLimitMiddleware(inner, limit=1, metrics=Metrics(), queue=5, queue_seconds=0.2)
        async with client_for(app) as http:
            first = asyncio.create_task(http.get("/v1/search"))
            await _started(1, inner)
            late = await http.get("/v1/search")
            inner.release.set()
            assert (await first).status_code == 200
        assert late.status_code == 503 and late.headers["retry-after"] == "1"

    asyncio.run(main())


@pytest.mark.parametrize("path", ["/v1/ask", "/v1/chat/completions", "/v1/conversations/abc/messages"])
def test_answers_queue_for_their_own_slots_without_holding_up_other_requests(path: str) -> None:
    async def main() -> None:
        inner = SlowApp()
        app = ConcurrencyLimitMiddleware(inner, limit=3, metrics=Metrics(), answer_limit=1, queue=10, queue_seconds=5)
        async with client_for(app) as http:
            answers = [asyncio.create_task(http.post(path, json={})) for _ in range(4)]
            await _started(1, inner)
            await asyncio.sleep(0.1)
            assert inner.running == 1 and app.answers.waiting == 3  # one answer at a time; the rest wait apart
            searches = [asyncio.create_task(http.post("/v1/search", json={})) for _ in range(2)]
            await _started(3, inner)  # the searches got the two other shared slots at once
            inner.release.set()
            responses = await asyncio.gather(*answers, *searches)
        assert [r.status_code for r in responses] == [200] * 6

    asyncio.run(main())


def test_timeouts_racing_releases_never_lose_a_slot() -> None:
    """Hundreds of requests with waits about as long as the work: afterwards every slot is free again."""
    import random

    class JitteryApp:
        def __init__(self) -> None:
            self.rng = random.Random(7)

        async def __call__(self, scope, receive, send) -> None:
            await asyncio.sleep(self.rng.uniform(0, 0.01))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    async def main() -> None:
        app = ConcurrencyLimitMiddleware(JitteryApp(), limit=2, metrics=Metrics(), answer_limit=1, queue=20,
                                         queue_seconds=0.01)
        async with client_for(app) as http:
            paths = ["/v1/ask" if i % 3 == 0 else "/v1/search" for i in range(300)]
            responses = await asyncio.gather(*(http.post(p, json={}) for p in paths))
        statuses = {r.status_code for r in responses}
        assert statuses <= {200, 503} and 200 in statuses and 503 in statuses  # both outcomes really raced
        inner = SlowApp()
        app.app = inner  # the same gates, now in front of requests that hold on
        async with client_for(app) as http:
            search = asyncio.create_task(http.post("/v1/search", json={}))
            answer = asyncio.create_task(http.post("/v1/ask", json={}))
            # both shared slots and the answer slot are free: none was lost to a timed-out wait
            await _started(2, inner)
            inner.release.set()
            assert [(await t).status_code for t in (search, answer)] == [200, 200]

    asyncio.run(main())


def test_with_no_queue_and_no_wait_free_slots_still_admit_requests() -> None:
    async def main() -> None:
        inner = SlowApp()
        app = ConcurrencyLimitMiddleware(inner, limit=2, metrics=Metrics(), queue=0, queue_seconds=0)
        async with client_for(app) as http:
            held = [asyncio.create_task(http.get("/v1/collections")) for _ in range(2)]
            await _started(2, inner)
            shed = await http.get("/v1/collections")
            inner.release.set()
            assert [(await t).status_code for t in held] == [200, 200]
        assert shed.status_code == 503

    asyncio.run(main())
