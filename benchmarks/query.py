"""Query latency over HTTP: /v1/search and /v1/ask (extractive) at 10k and 100k chunks, concurrency 1 and 8.

Chunks are synthetic for size (sentences of the SQuAD paragraphs recombined, random unit vectors for
chunks and their sentences) so a 100k-chunk index builds in a minute; questions are real SQuAD questions. A real `docqa serve` runs on
127.0.0.1. Targets: /v1/search p50 ≤ 25 ms and p99 ≤ 100 ms at 100k chunks, concurrency 1.

    .venv/bin/python benchmarks/query.py [--sizes 10000,100000] [--requests 200] [--json]
        [--store URL|postgres|embedded[,…]] [--replicas 1[,2]] [--rounds 1]

--store: build the index into that store (the same documents through the same `Store` calls as the
embedded one: `create_collection`, then `put_document` per synthetic document) and serve from it with
DOCQA_STORE__URL. `postgres` starts a throwaway PostgreSQL 16 + pgvector (pgserver, default settings) and
makes a fresh database; `embedded` is the default SQLite + FAISS data dir. Several, comma-separated
(`--store embedded,postgres`), are all built and then measured alternately in the same run, so they are
compared under the same load of this shared machine.

--replicas 1,2: start max(N) `docqa serve` processes on each store, and measure each N in turn (alternating,
`--rounds` times), the requests spread round-robin over the first N; searches/s of /v1/search are printed
with the ratio to one replica (target on 2 cores: two replicas ≥ 1.6× one at concurrency 8).

Building into PostgreSQL (`--hnsw after`, the default): the collection's HNSW index is dropped right after
`create_collection`, the documents are put one transaction each, and the index is then created again
exactly as the store defines it (`PostgresStore._create_hnsw`) with maintenance_work_mem raised for that one
statement (`--maintenance-work-mem`, 1GB: the graph of 100k × 384 floats must fit in memory, or pgvector
builds it on disk, far slower); then VACUUM ANALYZE, as autovacuum would soon do. `--hnsw during` keeps the
index and pays for it on every insert, as live ingestion does. The build line gives documents, index and
analyze seconds apart. With no --store (and one replica) the run and its output are as they always were.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from indexes.backends import StoreOptions, open_store  # noqa: E402
from indexes.embedders import SentenceTransformerEmbedder  # noqa: E402
from indexes.types import ChunkInput, DocumentFields  # noqa: E402
from pgstore import hnsw_after_load, is_postgres, store_url, vacuum_analyze  # noqa: E402  (benchmarks/pgstore.py)
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


def build(data_dir: Path, size: int, sentences: list[str], dim: int, identity: dict, url: str | None = None,
          hnsw: str = "after", maintenance_work_mem: str = "1GB") -> dict[str, float]:
    """A collection of `size` synthetic chunks, committed through the store as real documents (the embedded
    store under `data_dir` when `url` is None); returns seconds spent on documents, index and analyze."""
    rng = random.Random(size)
    store = open_store(url, data_dir, options=StoreOptions(statement_timeout=3600))
    postgres = is_postgres(url)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    collection = store.create_collection("default", identity)
    with ExitStack() as bulk:
        if postgres and hnsw == "after":
            timings = bulk.enter_context(hnsw_after_load(store, collection, maintenance_work_mem))
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
            store.put_document(collection, fields, chunks, vectors[d : d + len(texts)], sentence_vectors)
        documents = time.perf_counter() - started
    timings = {"documents_s": documents, **timings}
    if postgres:
        timings["analyze_s"] = vacuum_analyze(url)
    else:
        started = time.perf_counter()
        store.flush(collection)
        timings["index_s"] = time.perf_counter() - started
    store.close()
    return timings


def run(urls: list[str], path: str, questions: list[str], requests: int, concurrency: int) -> dict[str, float]:
    """Latency percentiles (ms) and throughput for `requests` calls at a given concurrency, spread round-robin
    over the servers at `urls`."""
    clients = [httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency))
               for url in urls]
    key = "query" if path == "/v1/search" else "question"

    def one(i: int) -> tuple[float, int]:
        started = time.perf_counter()
        r = clients[i % len(clients)].post(path, json={key: questions[i % len(questions)]})
        return (time.perf_counter() - started) * 1000, r.status_code

    for i in range(10 * len(clients)):  # warm-up
        one(i)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(requests)))
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    latencies = sorted(r[0] for r in results)
    q = statistics.quantiles(latencies, n=100)
    return {"p50": q[49], "p95": q[94], "p99": q[98], "rps": requests / elapsed,
            "errors": sum(1 for r in results if r[1] != 200), "latencies": latencies}


def line(size: int, path: str, concurrency: int, r: dict[str, float], label: str = "") -> str:
    return (f"{size:>7} chunks {label}{path:<10} c={concurrency}: p50 {r['p50']:7.1f} ms  p95 {r['p95']:7.1f} ms"
            f"  p99 {r['p99']:7.1f} ms  {r['rps']:6.1f} req/s  errors {r['errors']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server (e.g. a DOCQA_ setting)")
    parser.add_argument("--store", default=None,
                        help="store URL, 'postgres' (a throwaway pgserver), 'embedded', or several comma-separated")
    parser.add_argument("--replicas", default="1", help="docqa serve processes per store; several (1,2) alternate")
    parser.add_argument("--rounds", type=int, default=1, help="measurements of each store × replicas, alternating")
    parser.add_argument("--hnsw", choices=("after", "during"), default="after",
                        help="PostgreSQL: create the HNSW index after the bulk load (default) or keep it during")
    parser.add_argument("--maintenance-work-mem", default="1GB", help="PostgreSQL: for the HNSW index build")
    args = parser.parse_args()
    sentences, questions = squad_text()
    random.Random(0).shuffle(questions)
    embedder = SentenceTransformerEmbedder()
    identity = embedder.identity.as_dict()
    replicas = [int(n) for n in args.replicas.split(",")]
    specs = [None if s == "embedded" else s for s in args.store.split(",")] if args.store else [None]
    plain = args.store is None and replicas == [1]  # exactly the original run and output
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
            setups = []  # (label, servers)
            for n, spec in enumerate(specs):
                url, _ = stack.enter_context(store_url(spec))
                kind = "postgres" if is_postgres(url) else "embedded"
                work = Path(tmp) if plain else Path(tmp) / f"{n}-{kind}"
                started = time.perf_counter()
                timings = build(work / "data", size, sentences, identity["dim"], identity, url, args.hnsw,
                                args.maintenance_work_mem)
                built = time.perf_counter() - started
                if not plain and not args.json:
                    parts = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in timings.items())
                    print(f"{size:>7} chunks {kind}: built in {built:.1f} s ({parts})", flush=True)
                env = {"DOCQA_LOG_LEVEL": "warning", **dict(kv.split("=", 1) for kv in args.env)}
                if url:
                    env["DOCQA_STORE__URL"] = url
                servers = []
                for i in range(max(replicas)):
                    server = DocqaServer(work if plain else work / f"replica-{i}", env=env, startup_timeout=300)
                    server.data_dir = work / "data"  # replicas share the store (and the data dir, for uploads)
                    servers.append(stack.enter_context(server))
                setups.append((kind, servers, {"build_s": built, **timings}))
            for path in ("/v1/search", "/v1/ask"):
                for concurrency in [int(c) for c in args.concurrency.split(",")]:
                    n_requests = args.requests if path == "/v1/search" else max(args.requests // 4, 20)
                    for round_ in range(args.rounds):
                        for kind, servers, timings in setups:
                            for n in replicas:
                                r = run([s.base_url for s in servers[:n]], path, questions, n_requests, concurrency)
                                latencies = r.pop("latencies")
                                row = {"chunks": size, "route": path, "concurrency": concurrency, **r,
                                       "build_s": timings["build_s"]}
                                if not plain:
                                    row = {**row, "store": kind, "replicas": n, "round": round_, "build": timings,
                                           "latencies": latencies}
                                results.append(row)
                                if not args.json:
                                    label = "" if plain else f"{kind:<8} ×{n} "
                                    print(line(size, path, concurrency, r, label), flush=True)
    if not plain and not args.json:
        print(summary(results, replicas))
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "latencies"} for r in results], indent=2))


def summary(results: list[dict], replicas: list[int]) -> str:
    """Per store × replicas × concurrency: pooled percentiles over the rounds, best searches/s, ratio to ×1."""
    lines = ["summary (/v1/search; percentiles over all rounds, best searches/s of the rounds):"]
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["chunks"], r["store"], r["route"], r["concurrency"], r["replicas"]), []).append(r)
    for (size, store, route, concurrency, n), rows in groups.items():
        if route != "/v1/search":
            continue
        latencies = sorted(x for r in rows for x in r["latencies"])
        q = statistics.quantiles(latencies, n=100)
        best = max(r["rps"] for r in rows)
        base = groups.get((size, store, route, concurrency, min(replicas)))
        ratio = f"  {best / max(r['rps'] for r in base):.2f}× ×{min(replicas)}" if base and n != min(replicas) else ""
        lines.append(f"{size:>7} chunks {store:<8} ×{n} c={concurrency}: p50 {q[49]:6.1f} ms  p99 {q[98]:6.1f} ms"
                     f"  {best:6.1f} searches/s{ratio}  errors {sum(r['errors'] for r in rows)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
