"""pgvector HNSW recall@10 against exact search, and per-query latency, for each ef_search: how to choose it.

Vectors go into a PostgresStore collection through the Store protocol (`create_collection`, `put_document`,
20 chunks a document; the HNSW index is dropped for the bulk load and created again as the store defines it,
benchmarks/pgstore.py), and each query runs `store.dense_search(SearchQuery(collection, "", vector, k=10,
candidates=10))`, the store's own HNSW path (`SET LOCAL hnsw.ef_search = max(ef_search, 10)`), against a
store opened with each `StoreOptions(ef_search=…)` in turn, alternating per query. The exact top 10 are
computed in numpy over the same float32 vectors. Two sets:

- random: `--size` random unit vectors (dim 384). Queries, none of them stored: half are stored vectors
  perturbed (noise of the same norm × `--noise`, renormalised: the nearest neighbour is close, as for a
  real question and its passage), half fresh random vectors (every neighbour far: HNSW's hardest case).
- real (`--real N`, 0 skips it): all-MiniLM-L6-v2 vectors of N sentences, the SQuAD dev-half sentences
  then ArguAna sentences (../shared/eval); queries are SQuAD questions (`embed_query`) and held-out
  ArguAna sentences. Real embeddings cluster; recall there is what the service sees. Embedding takes a few
  minutes on 2 cores; `--cache FILE.npz` keeps the vectors for the next run.

Target: recall@10 ≥ 0.98 at the chosen ef_search (the default, StoreOptions.ef_search, is 100).

    .venv/bin/python benchmarks/pgvector_recall.py [--size 100000] [--queries 200] [--ef 40,64,100,200]
        [--real 20000] [--cache /tmp/recall-real.npz] [--store URL|postgres] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexes.backends import StoreOptions, open_store  # noqa: E402
from indexes.store import SearchQuery  # noqa: E402
from indexes.types import ChunkInput, DocumentFields  # noqa: E402
from pgstore import hnsw_after_load, store_url, vacuum_analyze  # noqa: E402  (benchmarks/pgstore.py)

EVAL = ROOT.parent / "shared" / "eval"
SQUAD = EVAL / "squad-v2.0-dev-half" / "dev-v2.0.json"
ARGUANA = EVAL / "beir-arguana" / "corpus.jsonl.gz"
CHUNKS_PER_DOC = 20
K = 10
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def random_set(size: int, queries: int, dim: int, noise: float, seed: int = 0) -> dict:
    """Stored random unit vectors; queries half perturbed stored ones, half fresh random ones."""
    rng = np.random.default_rng(seed)
    stored = unit(rng.standard_normal((size, dim)))
    near = stored[rng.choice(size, queries // 2, replace=False)]
    near = unit(near + noise * unit(rng.standard_normal(near.shape)))
    far = unit(rng.standard_normal((queries - queries // 2, dim)))
    return {"name": f"random {size}", "stored": stored, "texts": [f"vector {i}" for i in range(size)],
            "queries": {f"perturbed (noise {noise:g})": near, "random": far}}


def real_texts(size: int, held_out: int) -> tuple[list[str], list[str], list[str]]:
    """(stored sentences, SQuAD questions, held-out ArguAna sentences)."""
    squad = json.loads(SQUAD.read_text())
    sentences, questions = [], []
    for article in squad["data"]:
        for p in article["paragraphs"]:
            sentences += [s for s in SENTENCE.split(p["context"]) if len(s) > 20]
            questions += [q["question"] for q in p["qas"]]
    seen = set(sentences)
    arguana = []
    with gzip.open(ARGUANA, "rt") as f:
        for line in f:
            for s in SENTENCE.split(json.loads(line)["text"]):
                if len(s) > 20 and s not in seen:
                    seen.add(s)
                    arguana.append(s)
            if len(sentences) + len(arguana) >= size + held_out:
                break
    pool = sentences + arguana
    if len(pool) < size + held_out:
        raise SystemExit(f"only {len(pool)} distinct sentences for --real {size} + {held_out} held out")
    rng = np.random.default_rng(1)
    return pool[:size], [questions[i] for i in rng.permutation(len(questions))], pool[size : size + held_out]


def real_set(size: int, queries: int, cache: Path | None) -> dict:
    """all-MiniLM-L6-v2 vectors of real sentences; queries SQuAD questions and held-out sentences."""
    stored_texts, questions, held_out = real_texts(size, queries - queries // 2)
    questions = questions[: queries // 2]
    if cache and cache.exists():
        saved = np.load(cache, allow_pickle=False)
        if int(saved["size"]) == size and len(saved["questions"]) == len(questions):
            print(f"real vectors from {cache}", file=sys.stderr)
            return {"name": f"real {size}", "stored": saved["stored"], "texts": stored_texts,
                    "queries": {"SQuAD questions": saved["questions"], "held-out sentences": saved["held_out"]}}
    from indexes.embedders import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    started = time.perf_counter()
    stored = np.asarray(embedder.embed_documents(stored_texts), dtype=np.float32)
    asked = np.vstack([embedder.embed_query(q) for q in questions]).astype(np.float32)
    held = np.asarray(embedder.embed_documents(held_out), dtype=np.float32)
    print(f"embedded {len(stored_texts) + len(questions) + len(held_out)} texts in"
          f" {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if cache:
        np.savez(cache, size=size, stored=stored, questions=asked, held_out=held)
    return {"name": f"real {size}", "stored": stored, "texts": stored_texts,
            "queries": {"SQuAD questions": asked, "held-out sentences": held}}


def load(url: str, data: dict, identity: dict, maintenance_work_mem: str) -> tuple[object, np.ndarray, dict]:
    """Put the stored vectors into a fresh collection; returns (collection, chunk id of each row, timings)."""
    store = open_store(url, Path(tempfile.gettempdir()), options=StoreOptions(statement_timeout=3600))
    started = time.perf_counter()
    collection = store.create_collection(re.sub(r"\W+", "-", data["name"]), identity)
    ids: list[int] = []
    with hnsw_after_load(store, collection, maintenance_work_mem) as timings:
        stored, texts = data["stored"], data["texts"]
        for d in range(0, len(stored), CHUNKS_PER_DOC):
            part = texts[d : d + CHUNKS_PER_DOC]
            chunks, offset = [], 0
            for t in part:
                chunks.append(ChunkInput(t, t, offset, offset + len(t)))
                offset += len(t) + 1
            fields = DocumentFields(f"{collection.name}/{d // CHUNKS_PER_DOC}.txt", f"{d:064x}", offset)
            ids += store.put_document(collection, fields, chunks, stored[d : d + len(part)])[1]
        timings["documents_s"] = time.perf_counter() - started
    timings["analyze_s"] = vacuum_analyze(url)
    store.close()
    return collection, np.array(ids, dtype=np.int64), timings


def measure(url: str, collection, ids: np.ndarray, data: dict, efs: list[int], pool_size: int = 1) -> list[dict]:
    """Recall@10 and latency per ef_search, per query kind; the ef_search settings alternate query by query."""
    stores = {ef: open_store(url, options=StoreOptions(pool_size=pool_size, ef_search=ef)) for ef in efs}
    stored = data["stored"]
    rows = []
    try:
        for kind, queries in data["queries"].items():
            exact_rows = np.argsort(-(queries @ stored.T), axis=1)[:, :K]  # the exact top 10, by cosine
            exact = [set(ids[r].tolist()) for r in exact_rows]
            for ef in efs:  # warm-up: every store's connection, and the index pages into cache
                for q in queries[:20]:
                    stores[ef].dense_search(SearchQuery(collection, "", q, k=K, candidates=K))
            found: dict[int, list[float]] = {ef: [] for ef in efs}
            latency: dict[int, list[float]] = {ef: [] for ef in efs}
            for i, q in enumerate(queries):
                order = efs[i % len(efs):] + efs[: i % len(efs)]  # rotate, so no setting always goes first
                for ef in order:
                    started = time.perf_counter()
                    ranking = stores[ef].dense_search(SearchQuery(collection, "", q, k=K, candidates=K))
                    latency[ef].append((time.perf_counter() - started) * 1000)
                    found[ef].append(len(exact[i] & {c for c, _ in ranking[:K]}) / K)
            for ef in efs:
                rows.append({"set": data["name"], "queries": kind, "n": len(queries), "ef_search": ef,
                             "recall_at_10": float(np.mean(found[ef])), "min_recall": float(np.min(found[ef])),
                             "p50_ms": statistics.median(latency[ef]),
                             "p95_ms": statistics.quantiles(latency[ef], n=20)[18]})
        for ef in efs:  # all of this set's queries together
            mine = [r for r in rows if r["ef_search"] == ef and r["set"] == data["name"]]
            n = sum(r["n"] for r in mine)
            rows.append({"set": data["name"], "queries": "all", "n": n, "ef_search": ef,
                         "recall_at_10": sum(r["recall_at_10"] * r["n"] for r in mine) / n,
                         "min_recall": min(r["min_recall"] for r in mine),
                         "p50_ms": None, "p95_ms": None})
    finally:
        for store in stores.values():
            store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="random vectors stored")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200, help="per set")
    parser.add_argument("--ef", default="40,64,100,200", help="hnsw.ef_search settings to compare")
    parser.add_argument("--noise", type=float, default=0.5,
                        help="perturbation of the near queries, relative to the vector's norm")
    parser.add_argument("--real", type=int, default=20_000, help="real sentence vectors stored (0: skip the set)")
    parser.add_argument("--cache", type=Path, default=None, help="an .npz keeping the real set's vectors")
    parser.add_argument("--store", default="postgres", help="a postgresql:// URL, or 'postgres' (a throwaway pgserver)")
    parser.add_argument("--maintenance-work-mem", default="1GB", help="for the HNSW index build")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    efs = [int(e) for e in args.ef.split(",")]
    sets = []
    if args.size:
        sets.append(lambda: random_set(args.size, args.queries, args.dim, args.noise))
    if args.real:
        sets.append(lambda: real_set(args.real, args.queries, args.cache))
    rows, builds = [], []
    with store_url(args.store, "recall") as (url, _):
        for make in sets:
            data = make()
            dim = data["stored"].shape[1]
            identity = {"backend": "benchmark", "model": data["name"], "dim": dim, "precision": "fp32",
                        "normalize": True}
            collection, ids, timings = load(url, data, identity, args.maintenance_work_mem)
            builds.append({"set": data["name"], **timings})
            if not args.json:
                print(f"{data['name']}: {len(ids)} vectors loaded in {timings['documents_s']:.1f} s,"
                      f" HNSW index {timings['index_s']:.1f} s, analyze {timings['analyze_s']:.1f} s", flush=True)
            found = measure(url, collection, ids, data, efs)
            rows += found
            if not args.json:
                for r in found:
                    timing = "" if r["p50_ms"] is None else f"  p50 {r['p50_ms']:6.2f} ms  p95 {r['p95_ms']:6.2f} ms"
                    print(f"  {r['queries']:<28} n={r['n']:<4} ef_search {r['ef_search']:>4}: recall@10"
                          f" {r['recall_at_10']:.4f} (worst query {r['min_recall']:.1f}){timing}", flush=True)
                ok = [r["ef_search"] for r in found if r["queries"] == "all" and r["recall_at_10"] >= 0.98]
                print(f"  smallest ef_search with recall@10 ≥ 0.98 on all queries: {min(ok) if ok else 'none tried'}",
                      flush=True)
    if args.json:
        print(json.dumps({"builds": builds, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
