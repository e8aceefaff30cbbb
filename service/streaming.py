"""Bridge a blocking answer stream to Server-Sent Events; a client that goes away stops the generation."""

from __future__ import annotations

import json
import threading
from typing import Any, AsyncIterator, Callable, Iterator

import anyio

from service.answer import AnswerEvent
from service.problems import logged_problem

_END = object()


async def sse_events(
    events: Iterator[AnswerEvent], shape: Callable[[AnswerEvent], tuple[str, Any]]
) -> AsyncIterator[dict[str, str]]:
    """Run the blocking iterator in a worker thread, one step at a time, yielding SSE dicts."""
    lock = threading.Lock()  # next() and close() must never run at once on the same generator

    def step() -> Any:
        with lock:
            return next(events, _END)

    def close() -> None:
        with lock:
            close_fn = getattr(events, "close", None)
            if close_fn:
                close_fn()

    try:
        while True:
            event = await anyio.to_thread.run_sync(step, abandon_on_cancel=True)
            if event is _END:
                return
            name, data = shape(event)
            yield {"event": name, "data": json.dumps(data, default=str)}
    except Exception as exc:  # noqa: BLE001 - the stream ends with an error event (logged), never a traceback
        yield {"event": "error", "data": json.dumps(logged_problem(exc))}
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(close)

