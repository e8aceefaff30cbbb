"""Failures are logged with the request id and reach clients as safe problem bodies: errors that end a stream,
and a readiness check on a store or a model that is down."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from pg import PostgresCluster
from service.app import create_app
from service.logs import JsonFormatter
from service.problems import UNEXPECTED
from service.settings import EmbedderConfig, Settings, StoreConfig
from scripted_llm import FakeOpenAI
from server import read_sse
from service_app import context, openai_service

QUESTION = "How many nodes has the staging cluster?"


@pytest.fixture
def json_log() -> Iterator[list[dict[str, Any]]]:
    """docqa's log lines as the service writes them (service.logs.JsonFormatter), parsed."""
    lines: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(self.format(record)))

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("docqa")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def openai_app(tmp_path: Path, embedder) -> Iterator[tuple[TestClient, FakeOpenAI]]:
    """The service answering with an OpenAI-compatible generator (a scripted fake server), one note indexed."""
    with openai_service(tmp_path / "data", embedder, ["ok"], timeout=2, retries=0, raise_server_exceptions=False) as app:
        yield app


def test_a_generator_failing_mid_stream_ends_it_with_a_problem_logged_with_the_request_id(openai_app, json_log) -> None:
    client, fake = openai_app
    fake.script = ["truncated"]  # one token, then the stream ends without [DONE]

    response = client.post("/v1/ask", json={"question": QUESTION, "stream": True}, headers={"X-Request-ID": "stream-7"})

    events = read_sse(response)
    assert [name for name, _ in events] == ["citations", "token", "error"]
    problem = events[-1][1]
    assert problem["status"] == 502 and problem["request_id"] == "stream-7"
    assert problem["type"] == "https://docqa.dev/problems/generator-unavailable" and problem["title"] == "Generator unavailable"
    assert "stream ended without a finish_reason" in problem["detail"]
    [line] = [line for line in json_log if line["msg"] == "request failed"]
    assert line["request_id"] == "stream-7" and line["level"] == "warning" and line["status"] == 502
    assert line["error"] == "GeneratorUnavailable" and line["detail"] == problem["detail"]


def test_a_surprise_mid_stream_is_logged_with_its_traceback_and_shows_the_client_nothing(openai_app, json_log, monkeypatch) -> None:
    client, _ = openai_app

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom at /srv/secret/catalog.sqlite3")

    monkeypatch.setattr(context(client.app).answerer, "retrieve", broken)  # runs inside the stream
    response = client.post("/v1/ask", json={"question": QUESTION, "stream": True}, headers={"X-Request-ID": "stream-8"})

    assert response.status_code == 200  # the stream had started
    [(name, problem)] = read_sse(response)
    assert name == "error" and problem["status"] == 500 and problem["request_id"] == "stream-8"
    assert problem["detail"] == UNEXPECTED and "boom" not in response.text
    [line] = [line for line in json_log if line["msg"] == "unexpected error"]
    assert line["request_id"] == "stream-8" and line["level"] == "error"
    assert "RuntimeError: boom at /srv/secret/catalog.sqlite3" in line["exc"]


def test_the_same_failure_unstreamed_is_logged_and_bodied_alike(openai_app, json_log) -> None:
    client, fake = openai_app
    fake.script = ["truncated"]

    response = client.post("/v1/ask", json={"question": QUESTION}, headers={"X-Request-ID": "plain-7"})

    problem = response.json()
    assert response.status_code == 502 and problem["request_id"] == "plain-7"
    assert problem["type"] == "https://docqa.dev/problems/generator-unavailable"
    [line] = [line for line in json_log if line["msg"] == "request failed"]
    assert line["request_id"] == "plain-7" and line["error"] == "GeneratorUnavailable" and line["detail"] == problem["detail"]


# --- readiness: anyone may ask, so it names the kind of failure; the log has the rest ------------------------


@pytest.mark.slow
@pytest.mark.postgres
def test_readiness_on_a_stopped_database_names_no_url_and_logs_the_error(tmp_path: Path, embedder, json_log) -> None:
    cluster = PostgresCluster(tmp_path)
    cluster.start()
    try:
        settings = Settings(data_dir=tmp_path / "data", log_json=False,
                            store=StoreConfig(url=cluster.url(), connect_timeout=1))
        app = create_app(settings)
        context(app).store.embedders.add(settings.embedder.spec(), embedder)
        with TestClient(app) as client:
            deadline = time.monotonic() + 60
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, client.get("/readyz").json()
                time.sleep(0.1)
            cluster.stop()

            response = client.get("/readyz")
    finally:
        if cluster.running():
            cluster.stop()

    assert response.status_code == 503
    assert response.json() == {"status": "not ready", "checks": {"index": "error: storage unavailable", "model": "ok"}}
    [line] = [line for line in json_log if line["msg"] == "readiness: the store does not answer"]
    assert line["error"].startswith("StorageUnavailable: PostgreSQL at postgresql://") and "host=" in line["error"]


def test_readiness_after_a_failed_start_names_no_exception(tmp_path: Path, json_log) -> None:
    missing = tmp_path / "models" / "not-there"
    settings = Settings(data_dir=tmp_path / "data", log_json=False, embedder=EmbedderConfig(model=str(missing)))
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 30
        while not context(client.app).startup_error:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "not ready", "checks": {"index": "ok", "model": "error: start-up failed"}}
    [line] = [line for line in json_log if line["msg"] == "start-up failed"]
    assert "not-there" in line["exc"]
