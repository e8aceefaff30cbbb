"""The admin page's API in-process: recent jobs (paged, scoped to the key's collections) and re-ingesting a document
from its stored file, against the real model and a real SQLite store."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from service_app import context, make_app, wait_for_job

NOTE = b"# Ops\n\nThe staging cluster has 12 nodes.\n"
BROKEN = b"this is not a PDF at all"


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


def upload(client: TestClient, collection: str, files: list[tuple[str, bytes]], headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = client.post(f"/v1/collections/{collection}/documents", headers=headers,
                           files=[("files", (name, data)) for name, data in files])
    assert response.status_code == 202, response.text
    return wait_for_job(client, response.json()["id"], headers)


@pytest.fixture
def client(tmp_path: Path, embedder) -> Iterator[TestClient]:
    with TestClient(make_app(tmp_path / "data", embedder)) as test_client:
        yield test_client


def test_recent_jobs_are_listed_newest_first_with_their_files_counted(client: TestClient) -> None:
    first = upload(client, "default", [("ops.md", NOTE)])
    second = upload(client, "default", [("a.md", b"# A\n\nThe atrium has three lifts."), ("broken.pdf", BROKEN)])
    jobs = client.get("/v1/jobs").json()
    assert [j["id"] for j in jobs] == [second["id"], first["id"]]
    assert jobs[0]["file_count"] == 2 and jobs[0]["counts"] == {"ingested": 1, "failed": 1}
    assert jobs[0]["state"] == "succeeded" and jobs[0]["collection"] == "default"
    assert jobs[1]["file_count"] == 1 and jobs[1]["counts"] == {"ingested": 1}
    assert "files" not in jobs[0] and "pid" not in jobs[0]
    assert [j["id"] for j in client.get("/v1/jobs?limit=1&offset=1").json()] == [first["id"]]
    assert client.get("/v1/jobs?offset=2").json() == []
    assert "limit" in problem(client.get("/v1/jobs?limit=0"), 422)["detail"]


def test_a_queued_jobs_files_count_as_pending(client: TestClient) -> None:
    jobs = context(client.app).jobs
    jobs.records.create("queuedjob0000001", "default", ["x.md", "y.md"], 1.0, 1, "elsewhere")
    listed = {j["id"]: j for j in client.get("/v1/jobs").json()}
    assert listed["queuedjob0000001"]["counts"] == {"pending": 2} and listed["queuedjob0000001"]["state"] == "queued"


def test_jobs_are_scoped_to_the_keys_collections(tmp_path: Path, embedder) -> None:
    app = make_app(tmp_path / "data", embedder, auth={"enabled": True})
    keys = context(app).keys
    admin = {"Authorization": f"Bearer {keys.create('admin')[1]}"}
    beta_reader = {"Authorization": f"Bearer {keys.create('reader', ['beta'])[1]}"}
    with TestClient(app) as client:
        made = {}
        for name in ("alpha", "beta"):
            assert client.post("/v1/collections", json={"name": name}, headers=admin).status_code == 201
            made[name] = upload(client, name, [(f"{name}.md", NOTE)], admin)["id"]
        assert {j["id"] for j in client.get("/v1/jobs", headers=admin).json()} == set(made.values())
        assert [j["id"] for j in client.get("/v1/jobs", headers=beta_reader).json()] == [made["beta"]]
        assert client.get("/v1/jobs?collection=alpha", headers=beta_reader).json() == []  # as if it did not exist
        assert [j["id"] for j in client.get("/v1/jobs?collection=alpha", headers=admin).json()] == [made["alpha"]]
        assert problem(client.get("/v1/jobs"), 401)["title"] == "Unauthorized"


def test_reingesting_parses_an_unchanged_document_again_and_keeps_it_answerable(client: TestClient) -> None:
    job = upload(client, "default", [("ops.md", NOTE)])
    before = client.get(f"/v1/collections/default/documents/{job['files'][0]['document_id']}").json()
    again = upload(client, "default", [("ops.md", NOTE)])
    assert again["files"][0]["status"] == "unchanged"  # an upload of the same bytes is skipped...

    response = client.post(f"/v1/collections/default/documents/{before['id']}/reingest")
    assert response.status_code == 202, response.text
    assert response.json()["files"] == [{"source": "ops.md", "status": "pending", "reason": None, "chunks": 0, "document_id": None}]
    done = wait_for_job(client, response.json()["id"])
    outcome = done["files"][0]
    assert done["state"] == "succeeded" and outcome["status"] == "replaced" and outcome["chunks"] == before["chunks"]  # ...a re-ingest is not
    after = client.get(f"/v1/collections/default/documents/{outcome['document_id']}").json()
    assert after["updated_at"] > before["updated_at"] and after["created_at"] == before["created_at"]
    assert [d["source"] for d in client.get("/v1/collections/default/documents").json()] == ["ops.md"]
    answer = client.post("/v1/ask", json={"question": "How many nodes does the staging cluster have?"}).json()
    assert any(c["document_id"] == after["id"] and c["cited"] for c in answer["citations"]), answer


def test_reingesting_keeps_the_metadata_the_document_was_given(client: TestClient) -> None:
    response = client.post("/v1/collections/default/documents", files={"files": ("ops.md", NOTE)},
                           data={"metadata": '{"team": "facilities"}'})
    document_id = wait_for_job(client, response.json()["id"])["files"][0]["document_id"]
    job = wait_for_job(client, client.post(f"/v1/collections/default/documents/{document_id}/reingest").json()["id"])
    again = client.get(f"/v1/collections/default/documents/{job['files'][0]['document_id']}").json()
    assert again["metadata"]["team"] == "facilities"


def test_reingesting_a_failed_document_reports_its_reason_again(client: TestClient) -> None:
    failed = upload(client, "default", [("broken.pdf", BROKEN)])["files"][0]
    assert failed["status"] == "failed" and failed["reason"]
    listed = client.get("/v1/collections/default/documents?status=failed").json()
    assert [(d["id"], d["source"], d["error"]) for d in listed] == [(failed["document_id"], "broken.pdf", failed["reason"])]
    job = wait_for_job(client, client.post(f"/v1/collections/default/documents/{failed['document_id']}/reingest").json()["id"])
    assert job["state"] == "failed" and job["files"][0]["status"] == "failed" and job["files"][0]["reason"] == failed["reason"]


def test_reingesting_without_a_stored_file_is_404_naming_the_document(client: TestClient, tmp_path: Path) -> None:
    document_id = upload(client, "default", [("ops.md", NOTE)])["files"][0]["document_id"]
    for stored in (tmp_path / "data" / "uploads").rglob("ops.md"):
        stored.unlink()
    body = problem(client.post(f"/v1/collections/default/documents/{document_id}/reingest"), 404)
    assert body["detail"] == f"the source file of document {document_id} is not available"
    assert problem(client.post(f"/v1/collections/default/documents/{document_id + 1000}/reingest"), 404)["title"] == "Not found"
    assert problem(client.post("/v1/collections/nothing/documents/1/reingest"), 404)["detail"] == "collection 'nothing' not found"
    assert client.get("/v1/jobs").json()[0]["file_count"] == 1  # no job was queued for either


def test_reingesting_an_attachment_ingests_the_message_it_came_in(client: TestClient) -> None:
    from office_files import eml_bytes

    job = upload(client, "default", [("order.eml", eml_bytes())])
    stored = {d["source"]: d for d in client.get("/v1/collections/default/documents").json()}
    assert {"order.eml", "order.eml#invoice.pdf", "order.eml#notes.txt"} <= set(stored), job
    response = client.post(f"/v1/collections/default/documents/{stored['order.eml#invoice.pdf']['id']}/reingest")
    assert response.status_code == 202, response.text
    assert [f["source"] for f in response.json()["files"]] == ["order.eml"]
    done = wait_for_job(client, response.json()["id"])
    statuses = {f["source"]: f["status"] for f in done["files"]}
    assert statuses["order.eml"] == "replaced" and statuses["order.eml#invoice.pdf"] == "replaced", done
    assert statuses["order.eml#notes.txt"] == "replaced"
    again = {d["source"]: d for d in client.get("/v1/collections/default/documents").json()}
    assert set(again) == set(stored)
    assert again["order.eml#invoice.pdf"]["updated_at"] > stored["order.eml#invoice.pdf"]["updated_at"]
