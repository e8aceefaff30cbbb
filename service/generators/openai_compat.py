"""Any OpenAI-compatible `/chat/completions` server (vLLM, Ollama, llama.cpp, LM Studio, OpenAI), streamed as SSE."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Iterator, Sequence

import httpx

from service.errors import GeneratorUnavailable
from service.generators.base import Passage
from service.generators.prompt import build_messages, build_rewrite_messages, clean_rewrite

if TYPE_CHECKING:
    from service.settings import OpenAIConfig

RETRYABLE_STATUS = {429, 500, 502, 503, 504}


class _Retryable(Exception):
    """A failure before the first token: worth another try."""


class OpenAICompatibleGenerator:
    """Streams an answer from an OpenAI-style chat-completions endpoint using httpx and server-sent events."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 2,
        temperature: float = 0.1,
        max_tokens: int = 512,
        backoff: float = 0.25,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be > 0, got {max_tokens}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.retries = retries
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.backoff = backoff
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # httpx applies `timeout` to connecting and to each read, so a server that stalls mid-answer also fails.
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout))

    @classmethod
    def from_config(cls, cfg: OpenAIConfig) -> OpenAICompatibleGenerator:
        """Build from an `OpenAIConfig` settings section."""
        key = cfg.api_key.get_secret_value() if cfg.api_key is not None else None
        return cls(cfg.base_url, cfg.model, key, cfg.timeout, cfg.retries, cfg.temperature, cfg.max_tokens)

    def close(self) -> None:
        """Release pooled connections."""
        self._client.close()

    def generate(self, question: str, passages: Sequence[Passage]) -> Iterator[str]:
        """Yield answer pieces as the server streams them; retries only until the first piece arrives."""
        return self._chat(build_messages(question, passages), self.max_tokens)

    def rewrite_question(self, question: str, previous: Sequence[str]) -> str:
        """A follow-up made standalone by the LLM."""
        return clean_rewrite("".join(self._chat(build_rewrite_messages(question, previous), 96)), question)

    def _chat(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        payload = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "temperature": self.temperature,
            "max_tokens": max_tokens,
        }
        reason = "no attempt made"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                yield from self._attempt(payload)
                return
            except _Retryable as exc:
                reason = str(exc)
        raise self._unavailable(f"{reason} (after {self.retries + 1} attempts)")

    def _attempt(self, payload: dict) -> Iterator[str]:
        """One request. Failures before the first piece raise _Retryable; after it, GeneratorUnavailable."""
        started = False
        try:
            with self._client.stream("POST", f"{self.base_url}/chat/completions", json=payload) as response:
                self._check_status(response)
                for piece in _sse_pieces(response):
                    started = True
                    yield piece
        except httpx.TimeoutException as exc:
            reason = f"timed out ({type(exc).__name__})"
            if not started:
                raise _Retryable(reason) from exc
            raise self._unavailable(reason + " mid-answer") from exc
        except (httpx.TransportError, _BadStream) as exc:
            reason = str(exc) or type(exc).__name__
            if not started:
                raise _Retryable(reason) from exc
            raise self._unavailable(reason + " mid-answer") from exc

    def _check_status(self, response: httpx.Response) -> None:
        """Retry on 429/5xx; any other error status fails at once with the server's message."""
        if response.status_code < 400:
            return
        response.read()
        reason = f"HTTP {response.status_code}: {_error_message(response)}"
        if response.status_code in RETRYABLE_STATUS:
            raise _Retryable(reason)
        raise self._unavailable(reason)

    def _unavailable(self, reason: str) -> GeneratorUnavailable:
        return GeneratorUnavailable(f"openai-compatible server at {self.base_url}: {reason}")


class _BadStream(Exception):
    """The server sent something that is not an OpenAI chat-completions stream."""


def _sse_pieces(response: httpx.Response) -> Iterator[str]:
    """Text pieces from `data:` lines until `[DONE]`; other SSE lines (comments, `event:`) are skipped."""
    finished = False
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        content, finish_reason = _parse_chunk(data)
        finished = finished or finish_reason is not None
        if content:
            yield content
    if not finished:
        raise _BadStream("stream ended before [DONE]")


def _parse_chunk(data: str) -> tuple[str | None, str | None]:
    """(delta content, finish_reason) of one streamed chunk; raises _BadStream on anything malformed."""
    try:
        chunk = json.loads(data)
    except ValueError:
        raise _BadStream(f"not JSON in stream: {data[:80]!r}") from None
    if not isinstance(chunk, dict):
        raise _BadStream(f"unexpected chunk: {data[:80]!r}")
    if "error" in chunk:
        error = chunk["error"]
        raise _BadStream(f"error in stream: {error.get('message', error) if isinstance(error, dict) else error}")
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise _BadStream(f"chunk without choices: {data[:80]!r}")
    if not choices:  # e.g. the usage chunk some servers send last
        return None, None
    choice = choices[0]
    delta = choice.get("delta") if isinstance(choice, dict) else None
    if not isinstance(delta, dict):
        raise _BadStream(f"chunk without choices[0].delta: {data[:80]!r}")
    content = delta.get("content")
    if content is not None and not isinstance(content, str):
        raise _BadStream(f"delta.content is not text: {data[:80]!r}")
    return content, choice.get("finish_reason")


def _error_message(response: httpx.Response) -> str:
    """The `error.message` of an OpenAI-style error body, else the start of the body."""
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
    except (ValueError, AttributeError):
        pass
    return response.text[:300] or response.reason_phrase
