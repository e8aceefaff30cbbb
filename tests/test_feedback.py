"""Answer feedback through the API, in process with the real model: every answer (/v1/ask JSON and SSE, a
conversation's, an OpenAI-compatible completion, streamed or not) carries an id under which it was recorded;
POST /v1/answers/{id}/feedback rates it (again: replaced), within the key's collections; unrated answers expire."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from service_app import context, make_app, wait_for_job

DOCS = {
    "ops.md": "# Operations\n\nThe staging cluster has 12 nodes.\n\nBackups run every night at 02:00 UTC.\n",
    "cafe.md": "# Cafeteria\n\nThe cafeteria opens at 8 in the morning and closes at 4 in the afternoon.\n",
}
QUESTION = "How many nodes does the staging cluster have?"


def upload(client: TestClient, collection: str, files: dict[str, str], headers: dict[str, str] | None = None) -> None:
    for name, text in files.items():
        job = client.post(f"/v1/collections/{collection}/documents", files={"files": (name, text.encode())}, headers=headers)
        assert wait_for_job(client, job.json()["id"], headers)["state"] == "succeeded"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, embedder) -> Iterator[TestClient]:
    app = make_app(tmp_path_factory.mktemp("feedback") / "data", embedder)
    with TestClient(app) as test_client:
        upload(test_client, "default", DOCS)
        yield test_client


def sse(response: Any) -> list[tuple[str, Any]]:
    """(event, data) of a Server-Sent Events body."""
    events, name = [], "message"
    for line in response.text.splitlines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            payload = line[5:].strip()
            events.append((name, payload if payload == "[DONE]" else json.loads(payload)))
            name = "message"
    return events


def recorded(client: TestClient, answer_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = client.get(f"/v1/answers/{answer_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_answer_is_recorded_under_its_id_and_rating_it_again_replaces_the_rating(client: TestClient) -> None:
    asked = client.post("/v1/ask", json={"question": QUESTION}).json()
    assert "12" in asked["answer"] and asked["answer_id"].startswith("ans_")
    answer = recorded(client, asked["answer_id"])
    cited = [c for c in asked["citations"] if c["cited"]]
    assert cited and [c for c in answer["citations"] if c["cited"]] == [
        {k: c[k] for k in ("n", "document_id", "title", "source", "page", "locator", "locator_label", "ocr", "cited")}
        for c in cited]
    assert answer["citations"][0]["title"] == "Operations" and "text" not in answer["citations"][0]
    assert (answer["question"], answer["answer"], answer["collection"], answer["abstained"], answer["origin"]) == (
        QUESTION, asked["answer"], "default", False, "ask")
    assert answer["key_id"] is None and answer["asked"] is None and answer["feedback"] == []

    first = client.post(f"/v1/answers/{asked['answer_id']}/feedback", json={"rating": "down", "comment": "too terse"})
    assert first.status_code == 201, first.text
    assert first.json()["rating"] == "down" and first.json()["comment"] == "too terse" and first.json()["key_id"] is None
    again = client.post(f"/v1/answers/{asked['answer_id']}/feedback", json={"rating": "up"})
    assert again.status_code == 200  # the same rater (no key: auth is off) again: replaced, not added
    [only] = recorded(client, asked["answer_id"])["feedback"]
    assert (only["rating"], only["comment"]) == ("up", None)
    assert only["created_at"] == first.json()["created_at"] <= only["updated_at"]


def test_a_streamed_answer_names_its_id_in_the_done_event(client: TestClient) -> None:
    response = client.post("/v1/ask", json={"question": QUESTION, "stream": True})
    [(_, done)] = [(n, d) for n, d in sse(response) if n == "done"]
    assert done["answer_id"].startswith("ans_")
    assert recorded(client, done["answer_id"])["answer"] == done["answer"]


def test_an_abstention_is_recorded_with_its_reason(client: TestClient) -> None:
    asked = client.post("/v1/ask", json={"question": "What is the capital of France?"}).json()
    answer = recorded(client, asked["answer_id"])
    assert answer["abstained"] is True and answer["reason"] == asked["reason"] and answer["reason"]


def test_a_conversations_answers_carry_their_ids_and_keep_the_typed_follow_up(client: TestClient) -> None:
    conversation = client.post("/v1/conversations", json={}).json()["id"]
    first = client.post(f"/v1/conversations/{conversation}/messages", json={"content": QUESTION, "stream": False}).json()
    follow = client.post(f"/v1/conversations/{conversation}/messages",
                         json={"content": "and how often do backups run?", "stream": True})
    [(_, done)] = [(n, d) for n, d in sse(follow) if n == "done"]
    saved = [m for m in client.get(f"/v1/conversations/{conversation}").json()["messages"] if m["role"] == "assistant"]
    assert [m["answer_id"] for m in saved] == [first["answer_id"], done["answer_id"]] and None not in [first["answer_id"]]
    answer = recorded(client, done["answer_id"])
    assert answer["origin"] == "conversation" and answer["asked"] == "and how often do backups run?"
    assert answer["question"] == done["rewritten_question"] != answer["asked"]


def test_a_chat_completion_is_rated_by_its_own_id_streamed_or_not(client: TestClient) -> None:
    body = {"model": "docqa:default", "messages": [{"role": "user", "content": QUESTION}]}
    completion = client.post("/v1/chat/completions", json=body).json()
    assert completion["id"].startswith("chatcmpl-") and completion["answer_id"] == completion["id"]
    assert client.post(f"/v1/answers/{completion['id']}/feedback", json={"rating": "up"}).status_code == 201
    answer = recorded(client, completion["id"])
    assert answer["origin"] == "chat-completions" and answer["feedback"][0]["rating"] == "up"

    chunks = [d for _, d in sse(client.post("/v1/chat/completions", json={**body, "stream": True})) if d != "[DONE]"]
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and chunks[-1]["answer_id"] == ids.pop()
    assert "12" in recorded(client, chunks[-1]["answer_id"])["answer"]


@pytest.mark.parametrize("body", [{"rating": "sideways"}, {"rating": "up", "comment": "x" * 2001}, {"comment": "no rating"},
                                  {"rating": "up", "stars": 5}])
def test_a_bad_rating_is_422_and_stores_nothing(client: TestClient, body: dict[str, Any]) -> None:
    answer_id = client.post("/v1/ask", json={"question": QUESTION}).json()["answer_id"]
    response = client.post(f"/v1/answers/{answer_id}/feedback", json=body)
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert recorded(client, answer_id)["feedback"] == []


def test_an_unknown_answer_is_a_404_problem(client: TestClient) -> None:
    for response in (client.post("/v1/answers/ans_000000000000000000000000/feedback", json={"rating": "up"}),
                     client.get("/v1/answers/ans_000000000000000000000000")):
        assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
        assert response.json()["title"] == "Not found" and "ans_000000000000000000000000" in response.json()["detail"]


def test_unrated_answers_expire_after_keep_days_and_rated_ones_stay(client: TestClient) -> None:
    log = context(client.app).answers
    now = [log.clock() + 10 * 86400]
    old_clock, pruned_at = log.clock, log._pruned_at
    log.clock = lambda: now[0]
    try:
        log._pruned_at = None
        kept = client.post("/v1/ask", json={"question": QUESTION}).json()["answer_id"]
        gone = client.post("/v1/ask", json={"question": QUESTION}).json()["answer_id"]
        client.post(f"/v1/answers/{kept}/feedback", json={"rating": "up"})
        now[0] += 91 * 86400  # past the default keep_days (90); the next answer prunes
        log._pruned_at = None
        client.post("/v1/ask", json={"question": QUESTION})
        assert client.get(f"/v1/answers/{gone}").status_code == 404
        assert recorded(client, kept)["feedback"][0]["rating"] == "up"
    finally:
        log.clock, log._pruned_at = old_clock, pruned_at


def test_an_answer_whose_pruning_fails_is_still_recorded_and_rateable(client: TestClient, monkeypatch) -> None:
    log = context(client.app).answers

    def locked(before: float) -> int:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(log.records, "prune", locked)
    monkeypatch.setattr(log, "_pruned_at", None)  # this answer prunes
    asked = client.post("/v1/ask", json={"question": QUESTION}).json()
    assert asked["answer_id"] and not [w for w in asked["warnings"] if "not recorded" in w]
    assert client.post(f"/v1/answers/{asked['answer_id']}/feedback", json={"rating": "up"}).status_code == 201


def test_with_feedback_off_answers_carry_no_id_and_nothing_is_recorded(tmp_path: Path, embedder) -> None:
    app = make_app(tmp_path / "data", embedder, feedback={"enabled": False})
    with TestClient(app) as off:
        upload(off, "default", {"ops.md": DOCS["ops.md"]})
        asked = off.post("/v1/ask", json={"question": QUESTION}).json()
        completion = off.post("/v1/chat/completions", json={
            "model": "docqa:default", "messages": [{"role": "user", "content": QUESTION}]}).json()
        assert "12" in asked["answer"] and asked["answer_id"] is None and completion["answer_id"] is None
        assert context(app).store.records.count("answers") == 0


def test_an_answer_the_store_cannot_record_is_still_given_with_a_warning(tmp_path: Path, embedder) -> None:
    import sqlite3

    app = make_app(tmp_path / "data", embedder)
    with TestClient(app) as client:
        upload(client, "default", {"ops.md": DOCS["ops.md"]})
        damaged = sqlite3.connect(context(app).store.catalog.path)  # the answers' table gone: writes to it fail
        damaged.executescript("DROP TABLE feedback; DROP TABLE answers;")
        damaged.close()
        asked = client.post("/v1/ask", json={"question": QUESTION})
        assert asked.status_code == 200 and "12" in asked.json()["answer"] and asked.json()["answer_id"] is None
        assert any(w.startswith("this answer was not recorded, so it cannot be rated: OperationalError")
                   for w in asked.json()["warnings"])

@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, embedder) -> Iterator[tuple[TestClient, dict[str, dict[str, str]], dict[str, str]]]:
    """Auth on: collections alpha and beta; (client, headers per caller, key id per caller)."""
    app = make_app(tmp_path_factory.mktemp("feedback-keys") / "data", embedder, auth={"enabled": True})
    keys = context(app).keys
    with TestClient(app) as test_client:
        headers, ids = {}, {}
        for caller, role, scope in (("admin", "admin", None), ("reader_alpha", "reader", ["alpha"]),
                                    ("reader_beta", "reader", ["beta"])):
            record, secret = keys.create(role, scope)
            headers[caller], ids[caller] = {"Authorization": f"Bearer {secret}"}, record.id
        for name, (source, text) in {"alpha": ("ops.md", DOCS["ops.md"]), "beta": ("cafe.md", DOCS["cafe.md"])}.items():
            assert test_client.post("/v1/collections", json={"name": name}, headers=headers["admin"]).status_code == 201
            upload(test_client, name, {source: text}, headers["admin"])
        yield test_client, headers, ids


def test_a_key_rates_only_answers_of_collections_it_may_read_and_each_key_has_its_own_rating(keyed) -> None:
    client, headers, ids = keyed
    asked = client.post("/v1/ask", json={"question": QUESTION, "collection": "alpha"}, headers=headers["reader_alpha"]).json()
    answer_id = asked["answer_id"]
    assert recorded(client, answer_id, headers["admin"])["key_id"] == ids["reader_alpha"]
    for caller in ("reader_beta",):  # may not read alpha: the answer looks missing, and nothing leaks
        for response in (client.post(f"/v1/answers/{answer_id}/feedback", json={"rating": "down"}, headers=headers[caller]),
                         client.get(f"/v1/answers/{answer_id}", headers=headers[caller])):
            assert response.status_code == 404 and "12 nodes" not in response.text and "alpha" not in response.text
    assert client.post(f"/v1/answers/{answer_id}/feedback", json={"rating": "up"}).status_code == 401
    mine = client.post(f"/v1/answers/{answer_id}/feedback", json={"rating": "up"}, headers=headers["reader_alpha"])
    assert mine.status_code == 201 and mine.json()["key_id"] == ids["reader_alpha"]
    theirs = client.post(f"/v1/answers/{answer_id}/feedback", json={"rating": "down", "comment": "old figure"},
                         headers=headers["admin"])
    assert theirs.status_code == 201  # another key: a rating of its own, not a replacement
    ratings = {f["key_id"]: f["rating"] for f in recorded(client, answer_id, headers["reader_alpha"])["feedback"]}
    assert ratings == {ids["reader_alpha"]: "up", ids["admin"]: "down"}
