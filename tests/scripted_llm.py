"""A scripted LLM: a real OpenAI-compatible server on 127.0.0.1 that answers with the text the test chooses.

`ScriptedLLM()` serves `POST /v1/chat/completions`, streamed (SSE chunks, which docqa's `openai` generator asks
for) or as one JSON completion, replying to each request with `reply(prompt)`: `prompt` is what docqa sent, read
back into its question and numbered passages, so a test can cite the passage that holds a fact, or one that does
not, whatever order retrieval put them in. Every prompt is kept in `prompts`. `FakeOpenAI` is for what no reply
text can do: it follows a script of behaviours per request (server errors, a proxy's HTML, garbage, a stalled or
endless stream).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Callable

PASSAGE = re.compile(r'<passage n="(\d+)" source="[^"]*">\n(.*?)\n</passage>', re.DOTALL)
QUESTION = re.compile(r"\n\nQuestion: (.*)\nAnswer \(cite passages as \[n\]\):$", re.DOTALL)
PIECE = re.compile(r"\S+\s*|\s+")  # a word and the space after it: one streamed chunk


def sse(*contents: str, done: bool = True) -> bytes:
    """An OpenAI-style chat-completions stream carrying `contents` as deltas."""
    chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}]
    chunks += [{"choices": [{"index": 0, "delta": {"content": c}, "finish_reason": None}]} for c in contents]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + ("data: [DONE]\n\n" if done else "")
    return body.encode()


def completion(text: str) -> bytes:
    """A non-streamed chat completion whose message is `text`."""
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    return json.dumps({"id": "scripted", "object": "chat.completion", "choices": [choice]}).encode()


@dataclass(frozen=True)
class Prompt:
    """One request as the LLM saw it: docqa's question and its passages by number (empty for other prompts)."""

    question: str
    passages: dict[int, str]
    messages: list[dict]

    def holding(self, fact: str) -> int:
        """The number of the first passage that states `fact`."""
        return next(n for n, text in self.passages.items() if fact in text)

    def lacking(self, fact: str) -> int:
        """The number of the first passage that does not state `fact`."""
        return next(n for n, text in self.passages.items() if fact not in text)


def read_prompt(messages: list[dict]) -> Prompt:
    """The question and passages of docqa's answer prompt (`service.generators.prompt.build_messages`)."""
    user = messages[-1]["content"]
    question = QUESTION.search(user)
    return Prompt(question.group(1) if question else "", {int(n): t for n, t in PASSAGE.findall(user)}, messages)


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str) -> None:
    """One whole HTTP response."""
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A server on a free port of 127.0.0.1 (port 0: the OS picks one), answering in a daemon thread."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return httpd


def stop(httpd: ThreadingHTTPServer) -> None:
    """Stop serving and release the port."""
    httpd.shutdown()
    httpd.server_close()


class ScriptedLLM:
    """The server; `reply` (prompt -> answer text) may be replaced at any time, and is called once per request."""

    def __init__(self, reply: Callable[[Prompt], str] | None = None) -> None:
        self.reply: Callable[[Prompt], str] = reply or (lambda prompt: "")
        self.prompts: list[Prompt] = []
        llm = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (stdlib name)
                if self.path != "/v1/chat/completions":
                    send(self, 404, b'{"error": {"message": "not found"}}', "application/json")
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = read_prompt(body["messages"])
                llm.prompts.append(prompt)
                text = llm.reply(prompt)
                if body.get("stream"):
                    send(self, 200, sse(*PIECE.findall(text)), "text/event-stream")
                else:
                    send(self, 200, completion(text), "application/json")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = serve(Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def env(self) -> dict[str, str]:
        """The settings that make `docqa serve` answer with this server (and nothing else)."""
        return {
            "DOCQA_GENERATOR__BACKEND": "openai", "DOCQA_GENERATOR__ENABLED": '["openai"]',
            "DOCQA_GENERATOR__OPENAI__BASE_URL": self.url, "DOCQA_GENERATOR__OPENAI__MODEL": "scripted",
            "DOCQA_GENERATOR__OPENAI__RETRIES": "0",
        }

    def close(self) -> None:
        stop(self.httpd)

    def __enter__(self) -> ScriptedLLM:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class FakeOpenAI:
    """A stdlib HTTP server whose `/v1/chat/completions` answers follow a script, one behaviour per request (the
    last one repeats); "ok" streams `reply` as deltas."""

    def __init__(self) -> None:
        self.script: list[str] = ["ok"]
        self.reply: tuple[str, ...] = ("The staging cluster ", "has 12 nodes [1].")
        self.requests: list[dict] = []
        self.release = threading.Event()
        self.disconnected = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (stdlib name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                behaviour = fake.script.pop(0) if len(fake.script) > 1 else fake.script[0]
                getattr(fake, f"_{behaviour}")(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = serve(Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def _ok(self, handler: BaseHTTPRequestHandler) -> None:
        send(handler, 200, sse(*self.reply), "text/event-stream")

    def _error500(self, handler: BaseHTTPRequestHandler) -> None:
        body = json.dumps({"error": {"message": "model overloaded", "type": "server_error"}}).encode()
        send(handler, 500, body, "application/json")

    def _error401(self, handler: BaseHTTPRequestHandler) -> None:
        body = json.dumps({"error": {"message": "invalid api key", "type": "auth"}}).encode()
        send(handler, 401, body, "application/json")

    def _proxy502(self, handler: BaseHTTPRequestHandler) -> None:
        send(handler, 502, b"<html>bad gateway</html>", "text/html")

    def _stream_error(self, handler: BaseHTTPRequestHandler) -> None:
        body = b'data: {"error": {"message": "context length exceeded", "type": "invalid_request_error"}}\n\n'
        send(handler, 200, body, "text/event-stream")

    def _slow(self, handler: BaseHTTPRequestHandler) -> None:
        self.release.wait(5)  # past the client's timeout; released at teardown

    def _garbage(self, handler: BaseHTTPRequestHandler) -> None:
        send(handler, 200, b"data: <html>definitely not json</html>\n\n", "text/event-stream")

    def _no_choices(self, handler: BaseHTTPRequestHandler) -> None:
        send(handler, 200, b'data: {"id": "x", "object": "chat.completion.chunk"}\n\n', "text/event-stream")

    def _empty(self, handler: BaseHTTPRequestHandler) -> None:
        send(handler, 200, b"", "text/event-stream")

    def _truncated(self, handler: BaseHTTPRequestHandler) -> None:
        body = b'data: {"choices": [{"index": 0, "delta": {"content": "The staging"}, "finish_reason": null}]}\n\n'
        send(handler, 200, body, "text/event-stream")

    def _endless(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()
        chunk = {"choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": None}]}
        try:
            while not self.release.is_set():
                handler.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                handler.wfile.flush()
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            self.disconnected = True

    def close(self) -> None:
        self.release.set()
        stop(self.httpd)

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
