"""GET /v1/conversations a page at a time: newest first, `limit` and `offset`, a key's own conversations of the
collections it may read (filtered in the database, so every page but the last is full)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service_app import context, make_app


@pytest.fixture
def client(tmp_path: Path, embedder) -> TestClient:
    app = make_app(tmp_path / "data", embedder, auth={"enabled": True})
    with TestClient(app) as client:
        yield client


def key(client: TestClient, role: str, collections: list[str] | None = None) -> dict[str, str]:
    _, secret = context(client.app).keys.create(role, collections)
    return {"Authorization": f"Bearer {secret}"}


def test_conversations_are_listed_a_page_at_a_time(client: TestClient) -> None:
    admin = key(client, "admin")
    for name in ("alpha", "beta"):
        assert client.post("/v1/collections", json={"name": name}, headers=admin).status_code == 201
    reader = key(client, "reader", ["alpha"])
    made = []
    for i in range(5):
        made.append(client.post("/v1/conversations", json={"collection": "alpha", "title": f"t{i}"}, headers=reader).json()["id"])
        client.post("/v1/conversations", json={"collection": "beta"}, headers=admin)  # someone else's
        time.sleep(0.01)
    pages = [client.get(f"/v1/conversations?limit=2&offset={offset}", headers=reader).json() for offset in (0, 2, 4)]
    assert [[c["id"] for c in page] for page in pages] == [made[:-3:-1], made[-3:-5:-1], made[:1]]
    assert set(pages[0][0]) == {"id", "collection", "title", "created_at", "updated_at"}
    assert len(client.get("/v1/conversations", headers=admin).json()) == 5  # the admin's own
    for bad in ("limit=0", "limit=501", "offset=-1"):
        assert client.get(f"/v1/conversations?{bad}", headers=reader).status_code == 422
