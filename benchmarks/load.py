"""Load: a real `docqa serve`, N concurrent clients asking and searching while an upload is ingested.

    python benchmarks/load.py [--clients 50] [--seconds 30] [--notes 300] [--overload-limit 4]

Phase 1 (load): default limits; clients loop over /v1/ask (extractive) and /v1/search for `--seconds`
while a batch of files is uploaded and ingested. Reports throughput, p50/p99 per endpoint and errors by
status. Target: no errors (every response a 200), p99 of /v1/search <= 500 ms.
Phase 2 (overload): DOCQA_LIMITS__MAX_CONCURRENT_REQUESTS and MAX_QUEUED_REQUESTS = --overload-limit; the
same clients must get 503 with Retry-After beyond the limit and its queue (counted apart) instead of
queueing without bound.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from server import DocqaServer  # noqa: E402  (tests/server.py: a real `docqa serve` on a free port)
ENTRY = "from service.cli import main; main()"
WORDS = ("harbour glacier orchard lighthouse quarry meadow volcano canal prairie reef tundra delta ledger survey "
         "marker trail budget invoice cluster node replica backup policy holiday badge parking").split()
QUESTIONS = ["How many nodes does the staging cluster have?", "What is the vacation policy?",
             "How many markers did the glacier team log?", "Who approves invoices?", "When are backups taken?"]


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DOCQA_")}
    return {**base, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "DOCQA_LOG_LEVEL": "warning", **extra}


def write_notes(root: Path, count: int, rng: random.Random) -> None:
    """`count` Markdown notes of ~10 paragraphs each (about that many chunks)."""
    root.mkdir(parents=True)
    for i in range(count):
        paragraphs = [" ".join(rng.choice(WORDS) for _ in range(60)) + f". Note {i} logged {rng.randint(1, 999)} markers."
                      for _ in range(10)]
        (root / f"note-{i:04d}.md").write_text(f"# Note {i}\n\n" + "\n\n## Part\n\n".join(paragraphs))


async def client_loop(http: httpx.AsyncClient, until: float, rng: random.Random, results: list) -> None:
    while time.monotonic() < until:
        question = rng.choice(QUESTIONS)
        if rng.random() < 0.5:
            endpoint, payload = "/v1/ask", {"question": question, "generator": "extractive"}
        else:
            endpoint, payload = "/v1/search", {"query": question, "top_k": 5}
        started = time.perf_counter()
        try:
            response = await http.post(endpoint, json=payload)
            status, retry_after = response.status_code, response.headers.get("retry-after")
        except httpx.HTTPError as exc:
            status, retry_after = type(exc).__name__, None
        results.append((endpoint, status, time.perf_counter() - started, retry_after))
        if status == 503:
            await asyncio.sleep(float(retry_after or 1) * rng.uniform(0.1, 0.5))  # a polite client backs off


async def upload_batch(http: httpx.AsyncClient, folder: Path) -> str:
    files = [("files", (p.name, p.read_bytes(), "text/markdown")) for p in sorted(folder.iterdir())]
    response = await _polite(http, "POST", "/v1/collections/default/documents", files=files)
    response.raise_for_status()
    job = response.json()["id"]
    while True:
        state = (await _polite(http, "GET", f"/v1/jobs/{job}")).json()
        if state["state"] in ("succeeded", "failed"):
            return f"{state['state']}: {state['counts']}"
        await asyncio.sleep(0.5)


async def _polite(http: httpx.AsyncClient, method: str, url: str, **kwargs: object) -> httpx.Response:
    """A request that waits out 503s as their Retry-After says."""
    while True:
        response = await http.request(method, url, **kwargs)
        if response.status_code != 503:
            return response
        await asyncio.sleep(float(response.headers.get("retry-after", 1)))


async def run_phase(url: str, clients: int, seconds: float, upload: Path | None, seed: int) -> tuple[list, str | None, float]:
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        started = time.monotonic()
        until = started + seconds
        results: list = []
        uploading = asyncio.create_task(upload_batch(http, upload)) if upload else None
        await asyncio.gather(*(client_loop(http, until, random.Random(seed + i), results) for i in range(clients)))
        elapsed = time.monotonic() - started
        job = await uploading if uploading else None
    return results, job, elapsed


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def report(title: str, results: list, elapsed: float) -> dict:
    print(f"\n== {title}: {len(results)} requests in {elapsed:.1f} s = {len(results) / elapsed:.1f} req/s")
    by_endpoint: dict[str, list] = defaultdict(list)
    for endpoint, status, seconds, retry_after in results:
        by_endpoint[endpoint].append((status, seconds, retry_after))
    summary = {}
    for endpoint, rows in sorted(by_endpoint.items()):
        ok = [s for status, s, _ in rows if status == 200]
        statuses = Counter(status for status, _, _ in rows)
        shed = [r for r in rows if r[0] == 503]
        print(f"{endpoint:11s} ok {len(ok):5d} ({len(ok) / elapsed:5.1f}/s)  p50 {percentile(ok, 50) * 1000:7.1f} ms"
              f"  p99 {percentile(ok, 99) * 1000:7.1f} ms  max {max(ok, default=0) * 1000:7.1f} ms  statuses {dict(statuses)}"
              + (f"  503 with Retry-After: {sum(r[2] is not None for r in shed)}/{len(shed)}" if shed else ""))
        summary[endpoint] = {"p99": percentile(ok, 99), "statuses": statuses}
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--notes", type=int, default=300, help="synthetic notes ingested before the run (~10 chunks each)")
    parser.add_argument("--upload", type=int, default=20, help="notes uploaded during the run")
    parser.add_argument("--overload-limit", type=int, default=4)
    options = parser.parse_args()
    rng = random.Random(1)
    work = Path(tempfile.mkdtemp(prefix="docqa-load-"))
    data = work / "data"
    write_notes(work / "corpus", options.notes, rng)
    write_notes(work / "upload", options.upload, random.Random(2))
    shutil.copytree(ROOT / "samples", work / "corpus" / "samples", ignore=shutil.ignore_patterns("*.py"))
    started = time.perf_counter()
    ingest = subprocess.run([sys.executable, "-c", ENTRY, "--data-dir", str(data), "ingest", str(work / "corpus"), "--json"],
                            capture_output=True, text=True, env=env(), cwd=work)
    if ingest.returncode != 0:
        print(ingest.stderr[-2000:])
        return 1
    chunks = ingest.stdout.split('"chunks": ')[1].split(",")[0]
    print(f"corpus: {options.notes} notes + samples, {chunks} chunks, ingested in {time.perf_counter() - started:.0f} s")

    with DocqaServer(work, env={"DOCQA_LOG_LEVEL": "warning"}, startup_timeout=180) as server:
        results, job, elapsed = asyncio.run(run_phase(server.base_url, options.clients, options.seconds, work / "upload", 10))
    load = report(f"load: {options.clients} clients, upload job {job}", results, elapsed)
    # Within capacity (default limits: requests past the in-flight limit wait in a bounded queue), anything
    # but a 200 is an error, a 503 included.
    errors = sum(n for s in load.values() for status, n in s["statuses"].items() if status != 200)

    overloaded = {"DOCQA_LOG_LEVEL": "warning", "DOCQA_LIMITS__MAX_CONCURRENT_REQUESTS": str(options.overload_limit),
                  "DOCQA_LIMITS__MAX_QUEUED_REQUESTS": str(options.overload_limit)}
    with DocqaServer(work, env=overloaded, startup_timeout=180) as server:
        results, _, elapsed = asyncio.run(run_phase(server.base_url, options.clients, min(options.seconds, 15), None, 100))
    overload = report(f"overload: {options.clients} clients, max {options.overload_limit} requests in flight", results, elapsed)
    other = sum(n for s in overload.values() for status, n in s["statuses"].items() if status not in (200, 503))
    shed = sum(s["statuses"].get(503, 0) for s in overload.values())
    search_p99 = load.get("/v1/search", {}).get("p99", float("nan"))
    print(f"\nload errors: {errors}; search p99 {search_p99 * 1000:.0f} ms (target <= 500 ms);"
          f" overload: {shed} shed with 503, {other} other errors")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if errors == 0 and other == 0 and shed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
