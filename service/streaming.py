"""Bridge a blocking answer stream to Server-Sent Events; a client that goes away stops the generation."""

from __future__ import annotations

import json
import threading
from typing import Any, AsyncIterator, Callable, Iterator

import anyio

from indexes.errors import DocQAError
from service.answer import AnswerEvent
from service.logs import request_id_var

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
    except DocQAError as exc:
        yield {"event": "error", "data": json.dumps(_problem(exc.status, exc.title, exc.detail))}
    except Exception as exc:  # noqa: BLE001 - the stream ends with an error event, never a traceback
        yield {"event": "error", "data": json.dumps(_problem(500, "Internal error", f"{type(exc).__name__}"))}
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(close)


def _problem(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"type": f"https://docqa.dev/problems/{title.lower().replace(' ', '-')}", "title": title,
            "status": status, "detail": detail, "request_id": request_id_var.get()}
