"""The `http` backend: a re-ranking server's `/rerank` endpoint, in either of the two shapes servers speak.

`cohere` (Cohere, Jina, vLLM): `{"model", "query", "documents", "top_n"}` → `{"results": [{"index",
"relevance_score"}]}`; `tei` (Hugging Face text-embeddings-inference): `{"query", "texts"}` → `[{"index",
"score"}]`. Either reply shape is read whatever `api` is. The HTTP goes through the same SDK client as the
OpenAI-compatible generator (service/generators/openai_compat.py), with its timeout, key handling and retries.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Sequence

import httpx
import openai

from service.errors import RerankerUnavailable
from service.generators.openai_compat import RETRYABLE_STATUS, backoff_pause, error_message, failure, openai_client

if TYPE_CHECKING:
    from service.settings import RerankerConfig


class _Retryable(Exception):
    """A failure worth another try: a timeout, a refused connection, a 429 or a 5xx."""


class HttpReranker:
    """Posts the question and passages to `{base_url}/rerank`; retries timeouts, connection failures and
    429/5xx replies up to `retries` times, never a reply of the wrong shape (the server speaks another API)."""

    backend = "http"

    def __init__(self, base_url: str, model: str, *, api: str = "cohere", api_key: str | None = None,
                 timeout: float = 10.0, retries: int = 2, backoff: float = 0.25) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if api not in ("cohere", "tei"):
            raise ValueError(f"api must be cohere or tei, got {api!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"http:{model}"
        self.api = api
        self.retries = retries
        self.backoff = backoff
        self._client, self._headers = openai_client(self.base_url, api_key, timeout)

    def close(self) -> None:
        """Release pooled connections."""
        self._client.close()

    def body(self, query: str, texts: Sequence[str]) -> dict[str, Any]:
        """The request in the configured API's shape."""
        if self.api == "tei":
            return {"query": query, "texts": list(texts), "truncate": True}
        return {"model": self.model, "query": query, "documents": list(texts), "top_n": len(texts)}

    def rerank(self, query: str, texts: Sequence[str]) -> list[float]:
        """One score per text, in their order."""
        if not texts:
            return []
        reason = "no attempt made"
        for attempt in range(self.retries + 1):
            backoff_pause(attempt, self.backoff)
            try:
                return self._attempt(query, texts)
            except _Retryable as exc:
                reason = str(exc)
        raise self._unavailable(f"{reason} (after {self.retries + 1} attempts)")

    def _attempt(self, query: str, texts: Sequence[str]) -> list[float]:
        try:
            response = self._client.post("/rerank", cast_to=httpx.Response, body=self.body(query, texts),
                                         options={"headers": self._headers})
        except openai.APIStatusError as exc:
            reason = f"HTTP {exc.status_code}: {error_message(exc)}"
            if exc.status_code in RETRYABLE_STATUS:
                raise _Retryable(reason) from exc
            raise self._unavailable(reason) from exc
        except openai.APIError as exc:  # timeouts and connection failures
            raise _Retryable(failure(exc)) from exc
        try:
            return scores_of(response.json(), len(texts))
        except (ValueError, json.JSONDecodeError) as exc:
            raise self._unavailable(f"not a /rerank reply: {exc}; got {response.text[:80]!r}") from exc

    def _unavailable(self, reason: str) -> RerankerUnavailable:
        return RerankerUnavailable(f"re-ranking server at {self.base_url}: {reason}")


def scores_of(reply: Any, count: int) -> list[float]:
    """The score of each of `count` passages from a reply of either shape; ValueError naming what is wrong."""
    items = reply.get("results") if isinstance(reply, dict) else reply
    if not isinstance(items, list):
        raise ValueError("neither a list nor an object with `results`")
    scores: list[float | None] = [None] * count
    for item in items:
        if not isinstance(item, dict):
            raise ValueError(f"a result that is not an object: {item!r:.40}")
        index, score = item.get("index"), item.get("relevance_score", item.get("score"))
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
            raise ValueError(f"a result's index {index!r:.20} is not one of the {count} passages")
        if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
            raise ValueError(f"passage {index}'s score {score!r:.20} is not a number")
        scores[index] = float(score)
    missing = [i for i, s in enumerate(scores) if s is None]
    if missing:
        raise ValueError(f"no score for {len(missing)} of the {count} passages")
    return [s for s in scores if s is not None]


def build(config: RerankerConfig) -> HttpReranker:
    """The `http` backend from DOCQA_RERANKER__*."""
    key = config.api_key.get_secret_value() if config.api_key is not None else None
    return HttpReranker(config.base_url, config.model or "", api=config.api, api_key=key, timeout=config.timeout,
                        retries=config.retries)
