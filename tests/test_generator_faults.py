"""The OpenAI-compatible generator against a fake server that misbehaves: bounded retries, then GeneratorUnavailable."""

from __future__ import annotations

import time
from typing import Iterator

import pytest
from scripted_llm import FakeOpenAI

from service.errors import GeneratorUnavailable
from service.generators.base import Passage
from service.generators.openai_compat import OpenAICompatibleGenerator

PASSAGES = [Passage(1, "The staging cluster has 12 nodes.", "Ops handbook", "ops.md")]
RETRIES = 2


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    yield server
    server.close()


def generator(url: str, **kwargs) -> OpenAICompatibleGenerator:
    options = {"timeout": 0.5, "retries": RETRIES, "backoff": 0.01} | kwargs
    return OpenAICompatibleGenerator(url, "fake-model", **options)


def answer(gen: OpenAICompatibleGenerator) -> str:
    return "".join(gen.generate("How many nodes does staging have?", PASSAGES))


def test_a_streamed_answer_is_joined_from_the_deltas(fake: FakeOpenAI) -> None:
    fake.script = ["ok"]
    assert answer(generator(fake.url)) == "The staging cluster has 12 nodes [1]."
    request = fake.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["stream"] is True and request["body"]["model"] == "fake-model"
    assert request["body"]["messages"][0]["role"] == "system"
    assert "authorization" not in {k.lower() for k in request["headers"]}


def test_the_api_key_is_sent_as_a_bearer_token(fake: FakeOpenAI) -> None:
    fake.script = ["ok"]
    answer(generator(fake.url, api_key="sk-test"))
    headers = {k.lower(): v for k, v in fake.requests[0]["headers"].items()}
    assert headers["authorization"] == "Bearer sk-test"


def test_an_ambient_openai_api_key_is_not_sent(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    fake.script = ["ok"]
    answer(generator(fake.url))
    assert "authorization" not in {k.lower() for k in fake.requests[0]["headers"]}


@pytest.mark.parametrize(
    "behaviour, reason",
    [
        ("slow", "timed out"),
        ("error500", "HTTP 500: model overloaded"),
        ("proxy502", "HTTP 502: <html>bad gateway</html>"),
        ("stream_error", "error in stream: context length exceeded"),
        ("garbage", "not JSON in stream"),
        ("no_choices", "chunk without choices"),
        ("empty", "stream ended without a finish_reason"),
    ],
)
def test_a_failing_server_is_retried_a_bounded_number_of_times(fake: FakeOpenAI, behaviour: str, reason: str) -> None:
    fake.script = [behaviour]
    with pytest.raises(GeneratorUnavailable) as caught:
        answer(generator(fake.url))
    assert len(fake.requests) == RETRIES + 1
    message = str(caught.value)
    assert message.startswith(f"openai-compatible server at {fake.url}: ")
    assert reason in message and f"after {RETRIES + 1} attempts" in message


def test_an_answer_arrives_after_one_server_error(fake: FakeOpenAI) -> None:
    fake.script = ["error500", "ok"]
    assert answer(generator(fake.url)) == "The staging cluster has 12 nodes [1]."
    assert len(fake.requests) == 2


def test_a_client_error_is_not_retried(fake: FakeOpenAI) -> None:
    fake.script = ["error401"]
    with pytest.raises(GeneratorUnavailable, match="HTTP 401: invalid api key"):
        answer(generator(fake.url))
    assert len(fake.requests) == 1


def test_no_retry_once_tokens_were_yielded(fake: FakeOpenAI) -> None:
    fake.script = ["truncated"]
    pieces = generator(fake.url).generate("q", PASSAGES)
    assert next(pieces) == "The staging"
    with pytest.raises(GeneratorUnavailable, match="mid-answer"):
        list(pieces)
    assert len(fake.requests) == 1


def test_closing_the_iterator_drops_the_connection(fake: FakeOpenAI) -> None:
    fake.script = ["endless"]
    pieces = generator(fake.url, timeout=5).generate("q", PASSAGES)
    assert next(pieces) == "word "
    pieces.close()
    deadline = time.monotonic() + 3
    while not fake.disconnected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.disconnected, "the server kept streaming after the client closed the iterator"


def test_a_closed_port_is_generator_unavailable() -> None:
    with pytest.raises(GeneratorUnavailable, match="127.0.0.1:9"):
        answer(generator("http://127.0.0.1:9/v1", retries=1))


def test_constructor_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="ftp://x"):
        OpenAICompatibleGenerator("ftp://x", "m")
    with pytest.raises(ValueError, match="retries must be >= 0, got -1"):
        OpenAICompatibleGenerator("http://x", "m", retries=-1)
