"""The `http` re-ranker inside the service, against a scripted `/rerank` server on 127.0.0.1: when it answers,
/v1/search and /v1/ask follow its scores; when it times out, fails with 500 or replies with garbage, every route
keeps the fused order and says so in a warning (search, ask, the SSE done event, the OpenAI endpoint), after
the retries the settings allow, and never fails the request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest
from fastapi.testclient import TestClient
from rerankers import RerankServer
from server import read_sse
from service_app import make_app, wait_for_job

NOTES = {
    "staging.md": "The staging cluster has 12 nodes and runs in the Frankfurt region.",
    "production.md": "The production cluster has 40 nodes spread over three availability zones.",
    "backups.md": "Backups of the cluster databases are kept for thirty days in cold storage.",
    "oncall.md": "The on-call engineer for the cluster is paged through the incident phone line.",
    "canteen.md": "Lunch is served in the canteen from noon until two on weekdays.",
}
QUESTION = "How many nodes does the staging cluster have?"
RETRIES = 2


def shortest_first(query: str, texts: Sequence[str]) -> list[float]:
    """A scorer no fusion would agree with: the shorter the passage, the better."""
    return [-float(len(t)) for t in texts]


@pytest.fixture(scope="module")
def rerank_server() -> Iterator[RerankServer]:
    with RerankServer(shortest_first, shape="tei", stall_seconds=1.5) as server:
        yield server


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, embedder: Any, rerank_server: RerankServer) -> Iterator[TestClient]:
    reranker = {"model": "bge-reranker-base", "backend": "http", "base_url": rerank_server.url, "api": "tei",
                "timeout": 0.5, "retries": RETRIES, "candidates": 5}
    app = make_app(tmp_path_factory.mktemp("rerank-faults"), embedder, reranker=reranker)
    with TestClient(app) as c:
        files = [("files", (name, f"# {name[:-3].title()}\n\n{text}\n".encode())) for name, text in NOTES.items()]
        job = c.post("/v1/collections/default/documents", files=files).json()
        assert wait_for_job(c, job["id"])["state"] == "succeeded"
        yield c


@pytest.fixture
def server(rerank_server: RerankServer) -> Iterator[RerankServer]:
    rerank_server.requests.clear()
    rerank_server.script = []
    yield rerank_server
    rerank_server.script = []


def search(client: TestClient, k: int = 5) -> dict[str, Any]:
    response = client.post("/v1/search", json={"query": QUESTION, "top_k": k})
    assert response.status_code == 200, response.text
    return response.json()


def test_search_follows_the_servers_scores(client: TestClient, server: RerankServer) -> None:
    body = search(client)
    texts = [h["text"] for h in body["hits"]]
    assert texts == sorted(texts, key=len)
    assert [h["scores"]["rerank"] for h in body["hits"]] == [-float(len(t)) for t in texts]
    assert body["warnings"] == [] and len(server.requests) == 1
    assert sorted(server.requests[0]["texts"], key=len) == texts  # the five candidates, as the server saw them


@pytest.mark.parametrize("fault, requests, words", [
    ("stall", RETRIES + 1, "timed out"),
    ("500", RETRIES + 1, "HTTP 500: model crashed"),
    ("garbage", 1, "not a /rerank reply"),
])
def test_a_fault_keeps_the_fused_order_with_a_warning_on_every_route(
    client: TestClient, server: RerankServer, fault: str, requests: int, words: str,
) -> None:
    server.script = [fault] * requests
    body = search(client)
    assert len(server.requests) == requests  # the retries the settings allow, counted by the server
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True) and all("rerank" not in h["scores"] for h in body["hits"])
    [warning] = body["warnings"]
    assert warning.startswith("re-ranking failed, passages are in fused order: re-ranking server at ") and words in warning

    server.script = [fault] * requests
    answer = client.post("/v1/ask", json={"question": QUESTION}).json()
    assert answer["warnings"] == [warning] and [c["rerank"] for c in answer["citations"]] == [None] * len(answer["citations"])
    assert "12" in answer["answer"]

    server.script = [fault] * requests
    events = dict(read_sse(client.post("/v1/ask", json={"question": QUESTION, "stream": True})))
    assert events["done"]["warnings"] == [warning]

    server.script = [fault] * requests
    chat = client.post("/v1/chat/completions", json={"model": "docqa:default", "messages": [{"role": "user", "content": QUESTION}]})
    assert chat.status_code == 200 and chat.json()["warnings"] == [warning]

    server.script = [fault] * requests
    streamed = client.post("/v1/chat/completions", json={"model": "docqa:default", "stream": True,
                                                         "messages": [{"role": "user", "content": QUESTION}]})
    last = [json.loads(line[5:]) for line in streamed.text.splitlines() if line.startswith("data:") and "[DONE]" not in line][-1]
    assert last["warnings"] == [warning]


def test_after_a_fault_the_next_request_is_reranked_again(client: TestClient, server: RerankServer) -> None:
    server.script = ["garbage"]
    assert search(client)["warnings"]
    assert search(client)["warnings"] == []


def test_a_reranker_that_cannot_load_still_lets_the_service_answer(tmp_path: Path, embedder: Any) -> None:
    app = make_app(tmp_path / "data", embedder, reranker={"model": str(tmp_path / "missing-model")})
    with TestClient(app) as c:
        job = c.post("/v1/collections/default/documents", files={"files": ("ops.md", b"# Ops\n\nThe staging cluster has 12 nodes.\n")})
        assert wait_for_job(c, job.json()["id"])["state"] == "succeeded"
        body = c.post("/v1/ask", json={"question": QUESTION}).json()
        assert "12" in body["answer"] and "re-ranking failed" in body["warnings"][0]
        assert str(tmp_path / "missing-model") in body["warnings"][0]
