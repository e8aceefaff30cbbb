"""The HTTP API in-process (TestClient on create_app(Settings(data_dir=tmp_path))): the cases that need no real server."""

from __future__ import annotations

import importlib
import pkgutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

import service.routes
from indexes.embedders import EmbedderSpec
from service.app import create_app
from service.settings import LimitsConfig, Settings

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.fixture
def make_client(tmp_path: Path, embedder) -> Iterator[Callable[..., TestClient]]:
    """Build an app on a fresh data dir with the session's model, start its lifespan, wait until ready."""
    clients: list[TestClient] = []

    def make(**settings: Any) -> TestClient:
        app = create_app(Settings(data_dir=tmp_path / "data", **settings))
        spec = EmbedderSpec()
        app.state.docqa.store.embedders.add(spec, embedder)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").json()
            time.sleep(0.05)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def wait_for_job(client: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (job := client.get(f"/v1/jobs/{job_id}").json())["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["type"] and body["title"] and body["detail"]
    return body


# --- OpenAPI -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return create_app(Settings(data_dir=tmp_path_factory.mktemp("openapi"))).openapi()


def carries_examples(node: Any, schemas: dict[str, Any], seen: frozenset[str] = frozenset()) -> bool:
    """Whether `example`/`examples` appears anywhere in node, following $refs into components."""
    if isinstance(node, dict):
        if "example" in node or "examples" in node:
            return True
        ref = node.get("$ref", "")
        name = ref.rsplit("/", 1)[-1]
        if ref and name not in seen and carries_examples(schemas[name], schemas, seen | {name}):
            return True
        return any(carries_examples(v, schemas, seen) for k, v in node.items() if k != "$ref")
    if isinstance(node, list):
        return any(carries_examples(v, schemas, seen) for v in node)
    return False


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def declared_routes() -> set[tuple[str, str]]:
    """(method, path) of every documented route in every service.routes module's router."""
    declared = set()
    for info in pkgutil.iter_modules(service.routes.__path__):
        router = getattr(importlib.import_module(f"service.routes.{info.name}"), "router", None)
        for route in getattr(router, "routes", []):
            if isinstance(route, APIRoute) and route.include_in_schema:
                declared |= {(m, route.path) for m in route.methods}
    return declared


def test_every_route_is_in_the_openapi_schema(openapi):
    assert declared_routes() == {(m, p) for m, p, _ in operations(openapi)}


def test_every_request_body_and_success_response_has_examples(openapi):
    schemas = openapi["components"]["schemas"]
    missing = []
    for method, path, op in operations(openapi):
        if "requestBody" in op and not carries_examples(op["requestBody"], schemas):
            missing.append(f"{method} {path}: request body")
        for status, response in op["responses"].items():
            if status.startswith("2") and response.get("content") and not carries_examples(response["content"], schemas):
                missing.append(f"{method} {path}: {status} response")
    assert not missing, "\n".join(missing)


def test_every_operation_has_a_summary_and_documents_its_errors(openapi):
    for method, path, op in operations(openapi):
        assert op.get("summary"), f"{method} {path}"
        if "{" in path:  # anything addressed by name or id can be missing
            assert "404" in op["responses"], f"{method} {path}"


# --- the app on a fresh data dir -----------------------------------------------------------------


def test_readiness_is_503_until_the_model_has_loaded(tmp_path):
    client = TestClient(create_app(Settings(data_dir=tmp_path)))  # no lifespan: nothing warms up
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "not ready", "checks": {"index": "ok", "model": "loading"}}
    assert client.get("/healthz").status_code == 200


def test_a_fresh_data_dir_has_the_default_collection_once_ready(make_client):
    client = make_client()
    assert [c["name"] for c in client.get("/v1/collections").json()] == ["default"]
    answer = client.post("/v1/ask", json={"question": "How many nodes does the staging cluster have?"}).json()
    assert answer["abstained"] is True and answer["citations"] == []


def test_unknown_routes_and_methods_get_problem_bodies(make_client):
    client = make_client()
    problem(client.get("/v1/nothing-here"), 404)
    problem(client.put("/v1/ask", json={}), 405)


def test_a_chunked_body_over_the_request_limit_is_413(make_client):
    client = make_client(limits=LimitsConfig(max_request_bytes=1000))

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        yield b'{"question": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}'

    problem(client.post("/v1/ask", content=chunks(), headers={"content-type": "application/json"}), 413)
    assert client.post("/v1/ask", json={"question": "short"}).status_code == 200


def test_an_upload_with_one_file_over_the_limit_stores_nothing(make_client, tmp_path):
    client = make_client(limits=LimitsConfig(max_upload_bytes=4096))
    files = [("files", ("small.md", b"# Small\n\nThe kettle is on floor two.")), ("files", ("large.txt", b"y" * 5000))]
    body = problem(client.post("/v1/collections/default/documents", files=files), 413)
    assert "large.txt" in body["detail"]
    uploads = tmp_path / "data" / "uploads"
    assert not [p for p in uploads.rglob("*") if p.is_file()]
    assert client.get("/v1/collections/default").json()["documents"] == 0


def test_an_upload_under_the_limit_is_stored_by_content_hash(make_client, tmp_path):
    client = make_client(limits=LimitsConfig(max_upload_bytes=4096))
    data = b"# Kettle\n\nThe kettle is on floor two."
    job = wait_for_job(client, client.post("/v1/collections/default/documents", files=[("files", ("../kettle.md", data))]).json()["id"])
    assert job["state"] == "succeeded" and job["files"][0]["source"] == "kettle.md"
    stored = [p for p in (tmp_path / "data" / "uploads").rglob("*") if p.is_file()]
    assert [p.name for p in stored] == ["kettle.md"] and stored[0].read_bytes() == data
    download = client.get(f"/v1/collections/default/documents/{job['files'][0]['document_id']}/file")
    assert download.status_code == 200 and download.content == data


def test_a_second_upload_of_the_same_bytes_keeps_the_first_file(make_client, tmp_path):
    client = make_client(limits=LimitsConfig(max_upload_bytes=4096))
    data = b"# Kettle\n\nThe kettle is on floor two."
    first = wait_for_job(client, client.post("/v1/collections/default/documents", files=[("files", ("kettle.md", data))]).json()["id"])
    files = [("files", ("kettle.md", data)), ("files", ("huge.txt", b"z" * 5000))]
    problem(client.post("/v1/collections/default/documents", files=files), 413)
    download = client.get(f"/v1/collections/default/documents/{first['files'][0]['document_id']}/file")
    assert download.status_code == 200 and download.content == data


def test_two_files_of_the_same_name_in_one_upload_is_422_and_stores_nothing(make_client, tmp_path):
    client = make_client()
    files = [("files", ("notes.md", b"# A\n\nFirst.")), ("files", ("other.md", b"# B")), ("files", ("dir/notes.md", b"# C"))]
    body = problem(client.post("/v1/collections/default/documents", files=files), 422)
    assert body["detail"] == "notes.md: appears twice in this upload; each file needs its own name"
    assert not [p for p in (tmp_path / "data" / "uploads").rglob("*") if p.is_file()]


def test_a_document_id_past_sqlite_integers_is_422_not_500(make_client):
    client = make_client()
    huge = 2**63
    for response in (client.get(f"/v1/collections/default/documents/{huge}"),
                     client.get(f"/v1/collections/default/documents/{huge}/file"),
                     client.delete(f"/v1/collections/default/documents/{huge}"),
                     client.post("/v1/search", json={"query": "kettle", "filters": {"document_ids": [huge]}})):
        assert "document_id" in str(problem(response, 422))
    problem(client.get(f"/v1/collections/default/documents/{huge - 1}"), 404)


def test_too_many_files_in_one_upload_is_422(make_client):
    client = make_client(limits=LimitsConfig(max_files_per_upload=2))
    files = [("files", (f"n{i}.txt", b"note")) for i in range(3)]
    assert "limit is 2" in problem(client.post("/v1/collections/default/documents", files=files), 422)["detail"]


def test_an_unexpected_error_is_a_problem_with_the_request_id(tmp_path, embedder, monkeypatch):
    from fastapi.testclient import TestClient
    from service_app import context, make_app

    app = make_app(tmp_path / "data", embedder)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(context(app).store.catalog, "counts", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/collections/default", headers={"X-Request-ID": "req-123"})
    assert response.status_code == 500
    assert response.json()["request_id"] == "req-123"
    assert response.headers["x-request-id"] == "req-123"
    assert "boom" not in response.text  # no internals leak


def test_a_bad_filter_on_a_streamed_ask_is_a_422_before_the_stream(tmp_path, embedder):
    from fastapi.testclient import TestClient
    from service_app import make_app

    with TestClient(make_app(tmp_path / "data", embedder)) as client:
        response = client.post("/v1/ask", json={"question": "staging nodes?", "stream": True,
                                                "filters": {"metadata": {"bad key": "x"}}})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
