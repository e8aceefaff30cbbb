"""Query latency over HTTP: /v1/search and /v1/ask (extractive) at 10k and 100k chunks, concurrency 1 and 8.

Chunks are synthetic for size (sentences of the SQuAD paragraphs recombined, random unit vectors for
chunks and their sentences) so a 100k-chunk index builds in a minute; questions are real SQuAD questions. A real `docqa serve` runs on
127.0.0.1. Targets: /v1/search p50 ≤ 25 ms and p99 ≤ 100 ms at 100k chunks, concurrency 1.

    .venv/bin/python benchmarks/query.py [--sizes 10000,100000] [--requests 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from indexes.embedders import SentenceTransformerEmbedder  # noqa: E402
from indexes.embedded import EmbeddedStore  # noqa: E402
from indexes.types import ChunkInput, DocumentFields  # noqa: E402
from server import DocqaServer  # noqa: E402  (tests/server.py: a real `docqa serve` on a free port)

SQUAD = ROOT.parent / "shared" / "eval" / "squad-v2.0-dev-half" / "dev-v2.0.json"
CHUNKS_PER_DOC = 20


def squad_text() -> tuple[list[str], list[str]]:
    """SQuAD sentences and questions."""
    data = json.loads(SQUAD.read_text())
    sentences, questions = [], []
    for article in data["data"]:
        for p in article["paragraphs"]:
            sentences += [s for s in re.split(r"(?<=[.!?])\s+", p["context"]) if len(s) > 20]
            questions += [q["question"] for q in p["qas"]]
    return sentences, questions


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """`n` random unit vectors."""
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def build(data_dir: Path, size: int, sentences: list[str], dim: int, identity: dict) -> None:
    """A collection of `size` synthetic chunks, committed through the catalog as real documents."""
    rng = random.Random(size)
    store = EmbeddedStore(data_dir)
    collection = store.catalog.create_collection("default", identity)
    rng_vectors = np.random.default_rng(size)
    vectors = unit(rng_vectors, size, dim)
    for d in range(0, size, CHUNKS_PER_DOC):
        texts = [" ".join(rng.sample(sentences, 4)) for _ in range(min(CHUNKS_PER_DOC, size - d))]
        full = "\n\n".join(texts)
        chunks, offset = [], 0
        for t in texts:
            chunks.append(ChunkInput(t, t, offset, offset + len(t)))
            offset += len(t) + 2
        fields = DocumentFields(f"synthetic/{d // CHUNKS_PER_DOC}.txt", f"{d:064x}", len(full), title=f"doc {d}", text=full)
        sentence_vectors = [unit(rng_vectors, 4, dim) for _ in texts]  # each chunk is four sentences
        store.catalog.put_document(collection.id, fields, chunks, vectors[d : d + len(texts)], sentence_vectors)
    store.save_vectors(collection)


def run(url: str, path: str, questions: list[str], requests: int, concurrency: int) -> dict[str, float]:
    """Latency percentiles (ms) and throughput for `requests` calls at a given concurrency."""
    client = httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency))
    key = "query" if path == "/v1/search" else "question"

    def one(i: int) -> tuple[float, int]:
        started = time.perf_counter()
        r = client.post(path, json={key: questions[i % len(questions)]})
        return (time.perf_counter() - started) * 1000, r.status_code

    for i in range(10):  # warm-up
        one(i)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(requests)))
    elapsed = time.perf_counter() - started
    latencies = sorted(r[0] for r in results)
    q = statistics.quantiles(latencies, n=100)
    return {"p50": q[49], "p95": q[94], "p99": q[98], "rps": requests / elapsed,
            "errors": sum(1 for r in results if r[1] != 200)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server (e.g. a DOCQA_ setting)")
    args = parser.parse_args()
    sentences, questions = squad_text()
    random.Random(0).shuffle(questions)
    embedder = SentenceTransformerEmbedder()
    identity = embedder.identity.as_dict()
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            build(Path(tmp) / "data", size, sentences, identity["dim"], identity)
            built = time.perf_counter() - started
            env = {"DOCQA_LOG_LEVEL": "warning", **dict(kv.split("=", 1) for kv in args.env)}
            with DocqaServer(Path(tmp), env=env, startup_timeout=300) as server:
                for path in ("/v1/search", "/v1/ask"):
                    for concurrency in [int(c) for c in args.concurrency.split(",")]:
                        n = args.requests if path == "/v1/search" else max(args.requests // 4, 20)
                        r = run(server.base_url, path, questions, n, concurrency)
                        results.append({"chunks": size, "route": path, "concurrency": concurrency, **r, "build_s": built})
                        if not args.json:
                            print(f"{size:>7} chunks {path:<10} c={concurrency}: p50 {r['p50']:7.1f} ms  p95 {r['p95']:7.1f} ms"
                                  f"  p99 {r['p99']:7.1f} ms  {r['rps']:6.1f} req/s  errors {r['errors']}", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
