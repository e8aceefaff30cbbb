"""`docqa serve --workers 2` over real HTTP: jobs, documents and vectors are shared through the catalog, so
any worker reports on any job and searches what any other ingested or deleted; both log JSON lines."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from server import DocqaServer

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
QUESTION = "How many nodes does the staging cluster have?"


def fresh(method: str, url: str, **kwargs) -> httpx.Response:
    """One request on its own connection, so the kernel may hand it to either worker."""
    return httpx.request(method, url, timeout=60, **kwargs)


def top_sources(url: str, rounds: int = 40) -> list[str]:
    """The top hit's source for the same question, asked `rounds` times, 8 at once (both workers busy)."""
    def one(_: int) -> str:
        response = fresh("POST", f"{url}/v1/search", json={"query": QUESTION, "top_k": 1})
        assert response.status_code == 200, response.text
        hits = response.json()["hits"]
        return hits[0]["source"] if hits else ""
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(rounds)))


def test_two_workers_share_jobs_documents_and_vectors(tmp_path: Path) -> None:
    with DocqaServer(tmp_path, env={"DOCQA_WORKERS": "2"}, startup_timeout=180) as server:
        url = server.base_url
        files = [("files", (p.name, p.read_bytes())) for p in sorted(SAMPLES.iterdir()) if p.suffix != ".py"]
        submitted = fresh("POST", f"{url}/v1/collections/default/documents", files=files)
        assert submitted.status_code == 202, submitted.text
        deadline = time.monotonic() + 300
        while (job := fresh("GET", f"{url}/v1/jobs/{submitted.json()['id']}").json())["state"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["state"] == "succeeded", job

        assert set(top_sources(url)) == {"handbook.md"}  # whichever worker answers, it sees the new chunks

        handbook = next(f["document_id"] for f in job["files"] if f["source"] == "handbook.md")
        assert fresh("DELETE", f"{url}/v1/collections/default/documents/{handbook}").status_code == 204
        assert "handbook.md" not in top_sources(url)

        lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
        searches = [e for e in lines if e.get("msg") == "request" and e.get("path") == "/v1/search"]
        assert len(searches) == 80
        assert len({e["pid"] for e in searches}) == 2, "both workers served searches and logged them as JSON"
