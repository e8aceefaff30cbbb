"""A docqa app for in-process API tests: create_app(settings) with the session's embedding model plugged in."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from fastapi import FastAPI
from fastapi.testclient import TestClient

from indexes.embedders import EmbedderSpec
from scripted_llm import FakeOpenAI
from service.app import create_app
from service.context import ServiceContext
from service.settings import Settings


def make_app(data_dir: Path, embedder: Any, **settings: Any) -> FastAPI:
    """create_app over `data_dir`, reusing the already loaded model instead of loading another copy."""
    app = create_app(Settings(data_dir=data_dir, log_json=False, **settings))
    spec = EmbedderSpec()
    context(app).store.embedders.add(spec, embedder)
    return app


def context(app: FastAPI) -> ServiceContext:
    """The app's shared services."""
    return app.state.docqa


def wait_for_job(client: TestClient, job_id: str, headers: dict[str, str] | None = None, timeout: float = 60) -> dict:
    """Poll GET /v1/jobs/{id} until the job has finished; returns its record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


@contextmanager
def openai_service(
    data_dir: Path, embedder: Any, script: list[str], timeout: float, retries: int, **client: Any,
) -> Iterator[tuple[TestClient, FakeOpenAI]]:
    """The service answering through a FakeOpenAI that follows `script`, with one note indexed (the staging
    cluster has 12 nodes); `client` goes to the TestClient."""
    fake = FakeOpenAI()
    fake.script = script
    generator = {"backend": "openai", "enabled": ["extractive", "openai"],
                 "openai": {"base_url": fake.url, "timeout": timeout, "retries": retries}}
    app = make_app(data_dir, embedder, generator=generator)
    try:
        with TestClient(app, **client) as test_client:
            note = b"# Ops\n\nThe staging cluster has 12 nodes.\n"
            job = test_client.post("/v1/collections/default/documents", files={"files": ("ops.md", note)})
            assert wait_for_job(test_client, job.json()["id"])["state"] == "succeeded"
            yield test_client, fake
    finally:
        fake.close()
