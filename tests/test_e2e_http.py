"""End to end over real HTTP: one `docqa serve` (uvicorn) per module, driven with httpx.

Upload the samples, ask in English and Portuguese, stream, search, delete; bad input gets documented
problem bodies and the service stays up; every real-world PDF in ../shared/pdfs in one upload, with
searches running against the collection while it ingests.
"""

from __future__ import annotations

import csv
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from server import DocqaServer, ask, read_sse, wait_for_job

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
MAX_UPLOAD_BYTES = 2_000_000  # small, yet above the largest shared PDF (1.8 MB)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocqaServer]:
    """One real server for the whole module."""
    env = {"DOCQA_LIMITS__MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES)}
    with DocqaServer(tmp_path_factory.mktemp("e2e"), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: DocqaServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60) as c:
        yield c


def sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES.iterdir() if p.suffix != ".py")


def upload(client: httpx.Client, collection: str, files: list[tuple[str, bytes]]) -> httpx.Response:
    """POST several files in one multipart request."""
    return client.post(f"/v1/collections/{collection}/documents", files=[("files", f) for f in files])


def ingest(client: httpx.Client, collection: str, files: list[tuple[str, bytes]]) -> dict[str, Any]:
    response = upload(client, collection, files)
    assert response.status_code == 202, response.text
    return wait_for_job(client, response.json()["id"])


def assert_problem(client: httpx.Client, response: httpx.Response, status: int) -> dict[str, Any]:
    """A documented status with an RFC 9457 body, and the service still alive."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://") and body["title"] and body["detail"]
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    return body


@pytest.fixture(scope="module")
def samples(client: httpx.Client) -> dict[str, dict[str, Any]]:
    """The five samples uploaded into `default` in one request: outcome by file name."""
    job = ingest(client, "default", [(p.name, p.read_bytes()) for p in sample_files()])
    assert job["state"] == "succeeded", job
    return {f["source"]: f for f in job["files"]}


# --- ingest and answer ---------------------------------------------------------------------------


def test_every_sample_in_one_upload_is_ingested(samples):
    assert set(samples) == {p.name for p in sample_files()}
    for outcome in samples.values():
        assert outcome["status"] == "ingested" and outcome["reason"] is None
        assert outcome["chunks"] > 0 and outcome["document_id"] is not None


QUESTIONS = [
    ("How many nodes does the staging cluster have?", "12 nodes", "handbook.md", None),
    ("What is the name of the in-house deploy tool?", "Shipwright", "handbook.md", None),
    ("How many GPUs was Atlas trained on?", "64 GPUs", "atlas-report.pdf", 2),
    ("Quantos dias de férias por ano tem cada colaborador?", "30 dias", "politica-de-ferias.md", None),
    ("Qual é o aviso prévio para solicitar férias?", "15 dias", "politica-de-ferias.md", None),
]


@pytest.mark.parametrize("question, fact, source, page", QUESTIONS, ids=[q[0] for q in QUESTIONS])
def test_answers_state_the_fact_and_cite_its_source(client, samples, question, fact, source, page):
    answer = ask(client, question)
    assert not answer["abstained"], answer["reason"]
    assert fact in answer["answer"]
    cited = [c for c in answer["citations"] if c["cited"]]
    backing = [c for c in cited if fact in c["text"]]
    assert backing, f"no cited passage contains {fact!r}: {cited}"
    for c in backing:
        assert (c["source"], c["page"]) == (source, page)
        assert c["document_id"] == samples[source]["document_id"]


def test_a_question_the_documents_cannot_answer_abstains_with_the_closest_passages(client, samples):
    answer = ask(client, "What is the capital of Mongolia?")
    assert answer["abstained"] is True
    assert answer["reason"] and answer["answer"] == ""
    assert answer["citations"] and not any(c["cited"] for c in answer["citations"])


def test_a_streamed_answer_is_citations_then_tokens_then_the_same_answer_as_json(client, samples):
    question = "How many nodes does the staging cluster have?"
    with client.stream("POST", "/v1/ask", json={"question": question, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_sse(response)
    names = [name for name, _ in events]
    assert names[0] == "citations" and names[-1] == "done"
    assert set(names[1:-1]) == {"token"}
    tokens = "".join(data["text"] for _, data in events[1:-1])
    assert "12 nodes" in tokens
    done = events[-1][1]
    plain = ask(client, question)
    assert set(done) == set(plain)
    assert done["answer"] == plain["answer"] and done["abstained"] is False
    assert [(c["document_id"], c["cited"]) for c in done["citations"]] == [(c["document_id"], c["cited"]) for c in plain["citations"]]
    assert [c["text"] for c in events[0][1]["citations"]] == [c["text"] for c in done["citations"]]


def test_a_streamed_abstention_ends_with_done(client, samples):
    with client.stream("POST", "/v1/ask", json={"question": "What is the capital of Mongolia?", "stream": True}) as response:
        events = read_sse(response)
    assert [name for name, _ in events] == ["citations", "done"]
    assert events[-1][1]["abstained"] is True and events[-1][1]["reason"]


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_search_ranks_the_source_first_in_every_mode(client, samples, mode):
    response = client.post("/v1/search", json={"query": "staging cluster nodes", "mode": mode, "top_k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == mode and 0 < len(body["hits"]) <= 3
    assert body["hits"][0]["source"] == "handbook.md"
    assert "12 nodes" in body["hits"][0]["text"]


def test_deleted_documents_are_never_cited_or_found_again(client, samples):
    created = client.post("/v1/collections", json={"name": "deletions"})
    assert created.status_code == 201, created.text
    job = ingest(client, "deletions", [(p.name, p.read_bytes()) for p in (SAMPLES / "handbook.md", SAMPLES / "faq.html")])
    handbook = next(f["document_id"] for f in job["files"] if f["source"] == "handbook.md")
    question = "How many nodes does the staging cluster have?"
    assert any(c["cited"] and c["document_id"] == handbook for c in ask(client, question, collection="deletions")["citations"])

    assert client.delete(f"/v1/collections/deletions/documents/{handbook}").status_code == 204
    assert client.get(f"/v1/collections/deletions/documents/{handbook}").status_code == 404
    answer = ask(client, question, collection="deletions")
    assert all(c["document_id"] != handbook for c in answer["citations"])
    assert "12 nodes" not in answer["answer"]
    for mode in ("dense", "lexical", "hybrid"):
        hits = client.post("/v1/search", json={"query": "staging cluster nodes Shipwright", "collection": "deletions",
                                               "mode": mode, "top_k": 50}).json()["hits"]
        assert all(h["document_id"] != handbook for h in hits), mode
    assert client.get("/v1/collections/deletions").json()["documents"] == 1


# --- operations ----------------------------------------------------------------------------------


def test_health_readiness_and_metrics(client, samples):
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz").json()
    assert ready == {"status": "ok", "checks": {"index": "ok", "model": "ok"}}
    ask(client, "How many nodes does the staging cluster have?")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    lines = metrics.text.splitlines()
    assert any(l.startswith("docqa_http_requests_total{") and 'route="/v1/ask"' in l and 'status="200"' in l for l in lines)
    chunks = client.get("/v1/collections/default").json()["chunks"]
    assert chunks >= sum(outcome["chunks"] for outcome in samples.values())
    assert f'docqa_index_chunks{{collection="default"}} {float(chunks)}' in lines


def test_request_ids_are_echoed_or_made_up(client):
    given = client.get("/healthz", headers={"X-Request-ID": "e2e-abc.123"})
    assert given.headers["x-request-id"] == "e2e-abc.123"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert made.headers["x-request-id"] not in ("", "bad id\twith spaces")
    problem = client.post("/v1/ask", json={"question": "x", "collection": "nope"}, headers={"X-Request-ID": "trace-404"})
    assert problem.headers["x-request-id"] == "trace-404" and problem.json()["request_id"] == "trace-404"


def test_openapi_lists_every_route(client, server):
    from service.app import create_app
    from service.settings import Settings

    served = client.get("/openapi.json").json()["paths"]
    expected = create_app(Settings(data_dir=server.workdir / "openapi-probe")).openapi()["paths"]
    assert {(p, m) for p in served for m in served[p]} == {(p, m) for p in expected for m in expected[p]}
    for path in ("/v1/ask", "/v1/search", "/v1/collections/{name}/documents", "/v1/jobs/{job_id}", "/healthz", "/readyz", "/metrics"):
        assert path in served


# --- bad input -----------------------------------------------------------------------------------

BAD_REQUESTS = {
    "malformed JSON": ("POST", "/v1/ask", {"content": b'{"question": "how', "headers": {"content-type": "application/json"}}, 422),
    "unknown field": ("POST", "/v1/ask", {"json": {"question": "hi", "colection": "default"}}, 422),
    "question over the limit": ("POST", "/v1/ask", {"json": {"question": "why " * 501}}, 422),
    "body over max_request_bytes": ("POST", "/v1/ask", {"json": {"question": "x" * 1_100_000}}, 413),
    "unknown collection (ask)": ("POST", "/v1/ask", {"json": {"question": "hi", "collection": "nope"}}, 404),
    "unknown collection (search)": ("POST", "/v1/search", {"json": {"query": "hi", "collection": "nope"}}, 404),
    "unknown collection (upload)": ("POST", "/v1/collections/nope/documents", {"files": [("files", ("a.txt", b"hello"))]}, 404),
    "unknown document": ("GET", "/v1/collections/default/documents/999999", {}, 404),
    "unknown job": ("GET", "/v1/jobs/0000000000000000", {}, 404),
    "metadata filter key with spaces": ("POST", "/v1/ask", {"json": {"question": "hi", "filters": {"metadata": {"the team": "infra"}}}}, 422),
    "nested metadata filter": ("POST", "/v1/search", {"json": {"query": "hi", "filters": {"metadata": {"team": {"name": "infra"}}}}}, 422),
    "top_k over the limit": ("POST", "/v1/ask", {"json": {"question": "hi", "top_k": 51}}, 422),
    "generator not enabled": ("POST", "/v1/ask", {"json": {"question": "hi", "generator": "openai"}}, 422),
    "unknown search mode": ("POST", "/v1/search", {"json": {"query": "hi", "mode": "fuzzy"}}, 422),
    "unsupported upload type": ("POST", "/v1/collections/default/documents", {"files": [("files", ("setup.exe", b"MZ\x90\x00"))]}, 415),
    "upload metadata not an object": ("POST", "/v1/collections/default/documents", {"files": [("files", ("a.txt", b"hi"))], "data": {"metadata": "[1]"}}, 422),
    "bad collection name": ("POST", "/v1/collections", {"json": {"name": "../etc"}}, 422),
    "duplicate collection": ("POST", "/v1/collections", {"json": {"name": "default"}}, 409),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_gets_a_problem_and_the_service_stays_up(client, samples, case):
    method, path, kwargs, status = BAD_REQUESTS[case]
    assert_problem(client, client.request(method, path, **kwargs), status)


def test_an_upload_over_the_size_limit_is_refused_and_nothing_is_stored(client, server, samples):
    before = client.get("/v1/collections/default").json()
    big = b"lorem ipsum dolor sit amet\n" * (MAX_UPLOAD_BYTES // 27 + 10)
    body = assert_problem(client, upload(client, "default", [("big-notes.txt", big)]), 413)
    assert "big-notes.txt" in body["detail"]
    assert client.get("/v1/collections/default").json()["documents"] == before["documents"]
    assert not list((server.data_dir / "uploads").rglob("big-notes.txt"))
    assert not list((server.data_dir / "uploads").rglob("*.part"))


def test_a_corrupt_pdf_fails_alone_with_a_reason(client, samples):
    job = ingest(client, "default", [("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage"),
                                     ("notes.txt", b"The coffee machine on floor three is descaled every Monday.")])
    assert job["state"] == "succeeded"
    outcome = {f["source"]: f for f in job["files"]}
    assert outcome["broken.pdf"]["status"] == "failed" and outcome["broken.pdf"]["reason"]
    assert outcome["notes.txt"]["status"] == "ingested"
    assert client.get("/healthz").status_code == 200


def test_a_job_whose_every_file_fails_is_failed(client, samples):
    job = ingest(client, "default", [("only-broken.pdf", b"%PDF-1.4 not really")])
    assert job["state"] == "failed" and job["error"]
    assert job["files"][0]["status"] == "failed" and job["files"][0]["reason"]
    assert ask(client, "How many nodes does the staging cluster have?")["abstained"] is False


@pytest.mark.parametrize("name", ["../../etc/passwd.txt", "..\\..\\windows\\evil.txt", "/etc/shadow.md"])
def test_client_file_names_never_escape_the_data_dir(client, server, samples, name):
    marker = f"traversal marker {abs(hash(name))}".encode()
    job = ingest(client, "default", [(name, marker + b" lives only inside the data directory.")])
    stored_name = name.replace("\\", "/").rsplit("/", 1)[-1]
    assert [f["source"] for f in job["files"]] == [stored_name]
    assert job["files"][0]["status"] == "ingested"
    uploads = (server.data_dir / "uploads").resolve()
    matches = [p.resolve() for p in server.workdir.parent.rglob(stored_name) if marker in p.read_bytes()]
    assert matches and all(uploads in p.parents for p in matches)


# --- real-world PDFs, with searches while they ingest --------------------------------------------


def expected_outcome(special: str) -> tuple[str, str]:
    """What the manifest's note implies: (status, reason prefix)."""
    special = special.upper()
    if "ENCRYPTED" in special:
        return "failed", "encrypted: password required"
    if "ZERO-BYTE" in special:
        return "failed", "empty file"
    if special.startswith("SCANNED"):  # read by OCR (tests/test_ocr.py measures how well)
        return "ingested", ""
    if special.startswith("INVALID"):
        return "failed", ""
    return "ingested", ""


def search_while_ingesting(client: httpx.Client, job_id: str) -> tuple[list[tuple[int, int]], int]:
    """Searches in parallel until the job ends; every hit's document must already be complete.

    Returns the (document_id, chunks) seen and how many searches ran while the job was running.
    """
    queries = ["Zen of Python beautiful", "trace-based compilation", "budget allocation", "Topologie Raum", "Lorem ipsum"]
    finished = threading.Event()
    seen: list[tuple[int, int]] = []
    during = [0]

    def worker(offset: int) -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=60) as own:
            i = offset
            while not finished.is_set():
                mode = ("dense", "lexical", "hybrid")[i % 3]
                response = own.post("/v1/search", json={"query": queries[i % len(queries)], "collection": "realworld",
                                                        "mode": mode, "top_k": 10})
                assert response.status_code == 200, response.text
                hits: dict[int, set[int]] = {}
                for hit in response.json()["hits"]:
                    hits.setdefault(hit["document_id"], set()).add(hit["chunk_id"])
                for document_id, chunk_ids in hits.items():
                    doc = own.get(f"/v1/collections/realworld/documents/{document_id}").json()
                    assert doc["status"] == "ok" and doc["chunks"] == len(doc["chunk_list"]) > 0
                    assert chunk_ids <= {c["id"] for c in doc["chunk_list"]}
                    seen.append((doc["id"], doc["chunks"]))
                during[0] += 1
                i += 1
                finished.wait(0.05)  # leave the CPU to the ingestion between searches

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(worker, n) for n in range(2)]
        wait_for_job(client, job_id)
        finished.set()
        for f in futures:
            f.result()
    return seen, during[0]


def test_every_shared_pdf_in_one_upload_with_searches_meanwhile(client, samples, shared):
    pdfs = shared("pdfs")
    with open(pdfs / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert client.post("/v1/collections", json={"name": "realworld"}).status_code == 201
    response = upload(client, "realworld", [(Path(r["local_path"]).name, (pdfs / r["local_path"]).read_bytes()) for r in rows])
    assert response.status_code == 202, response.text
    seen, searches = search_while_ingesting(client, response.json()["id"])
    job = wait_for_job(client, response.json()["id"])

    outcomes = {f["source"]: f for f in job["files"]}
    assert len(outcomes) == len(rows)
    for row in rows:
        status, reason = expected_outcome(row["special"])
        outcome = outcomes[Path(row["local_path"]).name]
        assert outcome["status"] == status, (row["local_path"], outcome)
        assert (outcome["reason"] or "").startswith(reason), (row["local_path"], outcome)
        if status == "ingested":
            assert outcome["chunks"] > 0
    assert job["state"] == "succeeded"
    final_chunks = {f["document_id"]: f["chunks"] for f in job["files"] if f["status"] == "ingested"}
    assert searches > 0 and seen, "no search ran while the job was running"
    assert all(final_chunks[doc] == chunks for doc, chunks in seen)

    failed = client.get("/v1/collections/realworld/documents", params={"status": "failed"}).json()
    assert {d["source"] for d in failed} == {s for s, f in outcomes.items() if f["status"] == "failed"}
    documents = client.get("/v1/collections/realworld/documents").json()
    scanned = {Path(r["local_path"]).name for r in rows if r["special"].upper().startswith("SCANNED")}
    assert scanned and {d["source"]: d["ocr_pages"] for d in documents if d["source"] in scanned} == {s: [1] for s in scanned}
    assert all(not d["ocr_pages"] for d in documents if d["source"] not in scanned)  # text layers are never OCR'd
    assert ask(client, "Beautiful is better than what?", collection="realworld")["citations"]
    assert "12 nodes" in ask(client, "How many nodes does the staging cluster have?")["answer"]
