"""Any OpenAI-compatible `/chat/completions` server (vLLM, Ollama, llama.cpp, LM Studio, OpenAI), via the openai SDK."""

from __future__ import annotations

import json
import time
from typing import Iterator, Sequence

import openai
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from pydantic import BaseModel, Field, SecretStr

from service.errors import GeneratorUnavailable
from service.generators.base import GeneratorPlugin, Passage
from service.generators.prompt import build_messages, build_rewrite_messages, clean_rewrite

RETRYABLE_STATUS = {429, 500, 502, 503, 504}
# The SDK insists on a key; without one configured, the request goes out with no Authorization header at all.
_NO_KEY = "no-key"
_WITHOUT_AUTHORIZATION = {"Authorization": openai.Omit()}


def openai_client(base_url: str, api_key: str | None, timeout: float) -> tuple[openai.OpenAI, dict[str, object]]:
    """An SDK client for an OpenAI-style server, with the SDK's own retries off (callers retry themselves), and
    the headers each request takes: none without a key, so no `Authorization` goes out. A float timeout bounds
    connecting and each read, so a server that stalls mid-reply also fails. The HTTP re-ranker shares it."""
    client = openai.OpenAI(base_url=base_url, api_key=api_key or _NO_KEY, timeout=timeout, max_retries=0)
    return client, ({} if api_key else _WITHOUT_AUTHORIZATION)


def backoff_pause(attempt: int, backoff: float) -> None:
    """Wait before retry `attempt` (1, 2, ...): `backoff`, doubling each time."""
    if attempt:
        time.sleep(backoff * 2 ** (attempt - 1))


class OpenAISettings(BaseModel):
    """`DOCQA_GENERATOR__OPENAI__*`: any OpenAI-compatible chat-completions server (vLLM, Ollama, llama.cpp
    server, LM Studio, OpenAI)."""

    base_url: str = "http://127.0.0.1:11434/v1"
    model: str = "llama3.2"
    api_key: SecretStr | None = None
    timeout: float = Field(60.0, gt=0)
    retries: int = Field(2, ge=0, le=10)
    temperature: float = 0.1
    max_tokens: int = Field(512, gt=0)


class _Retryable(Exception):
    """A failure before the first token: worth another try."""


class _BadStream(Exception):
    """The server sent something that is not an OpenAI chat-completions stream."""


class OpenAICompatibleGenerator:
    """Streams an answer from an OpenAI-style chat-completions endpoint through the `openai` SDK.

    The SDK does the HTTP, the SSE decoding and the error bodies; docqa does the retrying itself (the SDK's own
    retries are off), because a retry is safe until the first token, not only until the response headers.
    """

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
        self._client, self._headers = openai_client(self.base_url, api_key, timeout)

    @classmethod
    def from_settings(cls, cfg: OpenAISettings) -> OpenAICompatibleGenerator:
        """Build from its settings section."""
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
        reason = "no attempt made"
        for attempt in range(self.retries + 1):
            backoff_pause(attempt, self.backoff)
            try:
                yield from self._attempt(messages, max_tokens)
                return
            except _Retryable as exc:
                reason = str(exc)
        raise self._unavailable(f"{reason} (after {self.retries + 1} attempts)")

    def _attempt(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        """One request. Failures before the first piece raise _Retryable; after it, GeneratorUnavailable."""
        started = False
        try:
            stream = self._client.chat.completions.create(
                model=self.model,
                messages=messages,
                stream=True,
                temperature=self.temperature,
                max_tokens=max_tokens,
                extra_headers=self._headers,
            )
            with stream:  # closing this generator (a client went away) closes the HTTP response
                finished = False
                for chunk in stream:
                    content, finish_reason = _delta(chunk)
                    finished = finished or finish_reason is not None
                    if content:
                        started = True
                        yield content
                if not finished:
                    raise _BadStream("stream ended without a finish_reason")
        except openai.APIStatusError as exc:  # raised before the stream starts, so nothing was yielded
            reason = f"HTTP {exc.status_code}: {error_message(exc)}"
            if exc.status_code in RETRYABLE_STATUS:
                raise _Retryable(reason) from exc
            raise self._unavailable(reason) from exc
        except (openai.APIError, json.JSONDecodeError, _BadStream) as exc:
            reason = failure(exc)
            if not started:
                raise _Retryable(reason) from exc
            raise self._unavailable(reason + " mid-answer") from exc

    def _unavailable(self, reason: str) -> GeneratorUnavailable:
        return GeneratorUnavailable(f"openai-compatible server at {self.base_url}: {reason}")


PLUGIN = GeneratorPlugin(OpenAISettings, lambda cfg, scorer: OpenAICompatibleGenerator.from_settings(cfg))


def _delta(chunk: object) -> tuple[str | None, str | None]:
    """(delta content, finish_reason) of one streamed chunk; raises _BadStream on anything malformed.

    The SDK builds chunks without validating them, so their shape is checked here.
    """
    choices = getattr(chunk, "choices", None) if isinstance(chunk, ChatCompletionChunk) else None
    if not isinstance(choices, list):
        raise _BadStream(f"chunk without choices: {_snippet(chunk)}")
    if not choices:  # e.g. the usage chunk some servers send last
        return None, None
    delta = getattr(choices[0], "delta", None)
    if not isinstance(delta, ChoiceDelta):
        raise _BadStream(f"chunk without choices[0].delta: {_snippet(chunk)}")
    if delta.content is not None and not isinstance(delta.content, str):
        raise _BadStream(f"delta.content is not text: {_snippet(chunk)}")
    return delta.content, choices[0].finish_reason


def _snippet(chunk: object) -> str:
    data = chunk.to_json(indent=None) if isinstance(chunk, openai.BaseModel) else json.dumps(chunk)
    return repr(data[:80])


def failure(exc: Exception) -> str:
    """What went wrong, in words, for a failure that is not an HTTP error status."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON in stream: {exc.doc[:80]!r}"
    if isinstance(exc, openai.APITimeoutError):
        return f"timed out ({type(exc.__cause__ or exc).__name__})"
    if isinstance(exc, openai.APIConnectionError):
        return f"{exc.message} {exc.__cause__}" if exc.__cause__ else exc.message
    if isinstance(exc, openai.APIError):  # an `error` object sent inside the stream
        return f"error in stream: {exc.message}"
    return str(exc)


def error_message(exc: openai.APIStatusError) -> str:
    """The `error.message` of an OpenAI-style error body, else the start of the body."""
    body = exc.body  # the SDK has already unwrapped `{"error": ...}`
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:300]
    if isinstance(body, (dict, list)):
        return json.dumps(body)[:300]
    return str(body or "")[:300] or exc.response.reason_phrase
