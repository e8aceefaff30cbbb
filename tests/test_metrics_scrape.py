"""The Prometheus metrics the README lists, read back from what a real `docqa serve` answers on /metrics: a search,
an answer, uploads and their jobs, a request held in the queue and one shed with 503 move exactly the series they
should, by route template and status."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server import DocqaServer

pytestmark = pytest.mark.slow

NOTE = b"# Ops\n\nThe staging cluster has 12 nodes.\n\n## Backups\n\nBackups are kept for thirty days.\n"
QUESTION = "How many nodes does the staging cluster have?"
DOCS = "/v1/collections/{name}/documents"


class Scrape:
    """One scrape of /metrics, parsed by prometheus_client's own parser."""

    def __init__(self, client: httpx.Client) -> None:
        response = client.get("/metrics")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        self.samples = [s for family in text_string_to_metric_families(response.text) for s in family.samples]
        self.names = {s.name for s in self.samples}

    def value(self, name: str, **labels: str) -> float:
        """The sample of this name with exactly these labels (a histogram's `_count` ignores its `le`); 0 if the
        series has not been written yet."""
        found = [s.value for s in self.samples if s.name == name and s.labels == labels]
        assert len(found) <= 1, (name, labels, found)
        return found[0] if found else 0.0


def held_upload(client: httpx.Client, release: threading.Event, sent: threading.Event) -> httpx.Response:
    """An upload whose body arrives only once `release` is set: the request holds its slot meanwhile."""
    boundary = "held-upload-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"held.md\"\r\n"
            "Content-Type: text/markdown\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        sent.set()
        release.wait(60)
        yield b"# Held\n\nThis file waited for the test to let it through.\n" + tail

    return client.post("/v1/collections/default/documents", content=body(),
                       headers={"content-type": f"multipart/form-data; boundary={boundary}"})


def hold_and_shed(client: httpx.Client, results: dict[str, httpx.Response], sent: threading.Event) -> threading.Thread:
    """While a held upload has the only slot: a second request waits in the one-place queue (the gauges show both),
    a third is shed with 503. Returns the waiting request's thread."""
    assert sent.wait(30)
    waiter = threading.Thread(target=lambda: results.update(waited=client.get("/v1/collections")))
    deadline = time.monotonic() + 30
    while Scrape(client).value("docqa_requests_in_flight", queue="requests") != 1:
        assert time.monotonic() < deadline, "the held upload never took its slot"
        time.sleep(0.05)
    waiter.start()
    while (queued := Scrape(client)).value("docqa_requests_waiting", queue="requests") != 1:
        assert time.monotonic() < deadline, "the second request never queued"
        time.sleep(0.05)
    assert queued.value("docqa_requests_in_flight", queue="requests") == 1
    shed = client.get("/v1/collections")
    assert shed.status_code == 503 and shed.headers["retry-after"]
    return waiter


def poll_job(client: httpx.Client, job_id: str, polls: list[int]) -> dict:
    """Poll GET /v1/jobs/{id} until it finishes, counting the polls in `polls`."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        polls.append(1)
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never finished")


def big_document(paragraphs: int = 400) -> bytes:
    """A Markdown file long enough that its job is still queued or running when the scrape after its 202 comes."""
    parts = [f"## Section {i}\n\nServer rack {i} in hall {i % 7} holds {i * 3} blades and {i % 11} spare power units."
             for i in range(paragraphs)]
    return ("# Inventory\n\n" + "\n\n".join(parts) + "\n").encode()


def test_a_real_scrape_shows_requests_retrieval_generation_ingestion_index_sizes_queues_and_sheds(tmp_path: Path) -> None:
    env = {"DOCQA_LIMITS__MAX_CONCURRENT_REQUESTS": "1", "DOCQA_LIMITS__MAX_QUEUED_REQUESTS": "1",
           "DOCQA_LIMITS__QUEUE_SECONDS": "60"}
    with DocqaServer(tmp_path, env=env) as server, httpx.Client(base_url=server.base_url, timeout=120) as client:
        before = Scrape(client)
        assert before.value("docqa_ingest_jobs", state="queued") == before.value("docqa_ingest_jobs", state="running") == 0
        polls: list[int] = []

        # an upload of a good file and a broken one
        job = client.post("/v1/collections/default/documents",
                          files=[("files", ("ops.md", NOTE)), ("files", ("broken.pdf", b"%PDF-1.7 not a PDF"))]).json()
        first = poll_job(client, job["id"], polls)
        # a search and an answer
        assert client.post("/v1/search", json={"query": "staging cluster nodes"}).json()["hits"]
        answer = client.post("/v1/ask", json={"question": QUESTION}).json()
        assert "12 nodes" in answer["answer"] and answer["generator"] == "extractive"
        # a long upload: its job is queued or running at the scrape that follows its 202
        big = client.post("/v1/collections/default/documents", files={"files": ("inventory.md", big_document())}).json()
        during = Scrape(client)
        polls.append(1)
        if client.get(f"/v1/jobs/{big['id']}").json()["state"] in ("queued", "running"):  # so it was at the scrape too
            assert during.value("docqa_ingest_jobs", state="queued") + during.value("docqa_ingest_jobs", state="running") == 1
        second = poll_job(client, big["id"], polls)
        assert second["state"] == "succeeded"

        # one request holds the only slot, a second waits in the one-place queue, a third is shed
        release, sent = threading.Event(), threading.Event()
        results: dict[str, httpx.Response] = {}
        holder = threading.Thread(target=lambda: results.update(held=held_upload(client, release, sent)))
        holder.start()
        try:
            waiter = hold_and_shed(client, results, sent)
        finally:
            release.set()
            holder.join(60)
        waiter.join(60)
        assert results["held"].status_code == 202 and results["waited"].status_code == 200
        third = poll_job(client, results["held"].json()["id"], polls)

        after = Scrape(client)
        collection = client.get("/v1/collections/default").json()

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    # requests by route template (never the raw path) and status, with their latencies
    assert moved("docqa_http_requests_total", route="/v1/search", method="POST", status="200") == 1
    assert moved("docqa_http_requests_total", route="/v1/ask", method="POST", status="200") == 1
    assert moved("docqa_http_requests_total", route=DOCS, method="POST", status="202") == 3
    assert moved("docqa_http_requests_total", route="/v1/jobs/{job_id}", method="GET", status="200") == len(polls)
    assert moved("docqa_http_requests_total", route="/v1/collections", method="GET", status="200") == 1
    assert moved("docqa_http_requests_total", route="/v1/collections", method="GET", status="503") == 1
    assert not any("/v1/jobs/" + job["id"] in str(s.labels) for s in after.samples)
    assert moved("docqa_http_request_seconds_count", route="/v1/ask", method="POST") == 1
    assert moved("docqa_http_request_seconds_count", route=DOCS, method="POST") == 3
    assert after.value("docqa_http_request_seconds_sum", route="/v1/ask", method="POST") > 0
    # retrieval (the search and the answer), each stage, generation
    assert moved("docqa_retrieval_seconds_count") == 2
    for stage in ("dense", "lexical", "fusion"):
        assert moved("docqa_retrieval_stage_seconds_count", stage=stage) == 2, stage
    assert moved("docqa_retrieval_stage_seconds_count", stage="rerank") == 0  # no re-ranker configured
    assert moved("docqa_generation_seconds_count", generator="extractive") == 1
    # ingestion: files by status, chunks written
    assert moved("docqa_ingest_files_total", status="ingested") == 3
    assert moved("docqa_ingest_files_total", status="failed") == 1
    written = sum(f["chunks"] for j in (first, second, third) for f in j["files"] if f["status"] == "ingested")
    assert written > 3 and moved("docqa_ingest_chunks_total") == written
    # index sizes, as the collection reports them and as the jobs wrote them
    assert after.value("docqa_index_chunks", collection="default") == collection["chunks"] == written
    assert after.value("docqa_index_documents", collection="default") == collection["documents"]
    # queues: empty again; the one shed request counted against the queue that was full
    assert after.value("docqa_requests_in_flight", queue="requests") == 0
    assert after.value("docqa_requests_waiting", queue="requests") == 0
    assert after.value("docqa_ingest_jobs", state="queued") == after.value("docqa_ingest_jobs", state="running") == 0
    assert moved("docqa_overload_rejections_total", queue="requests") == 1
    assert moved("docqa_overload_rejections_total", queue="answers") == 0


def test_an_upload_refused_because_the_job_queue_is_full_is_counted_against_it(tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from indexes.embedded import EmbeddedStore
    from service.errors import Overloaded
    from service.jobs import JobRunner
    from service.metrics import Metrics

    metrics = Metrics()
    runner = JobRunner(EmbeddedStore(tmp_path / "data").records.jobs, max_queued=0, metrics=metrics)
    try:
        with pytest.raises(Overloaded, match="ingestion jobs are queued"):
            runner.submit("default", [], lambda files, progress: None)
    finally:
        runner.shutdown()
    text = generate_latest(metrics.registry).decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("docqa_overload_rejections_total", (("queue", "jobs"),))] == 1
    assert samples[("docqa_overload_rejections_total", (("queue", "requests"),))] == 0
