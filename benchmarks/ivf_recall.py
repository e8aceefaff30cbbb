"""The embedded store's IVF index against its flat one: build time, recall@10 against exact search, latency,
bytes; and float16 against float32 chunk vectors.

Vectors: all-MiniLM-L6-v2 embeddings of 3000 real passages (the SQuAD dev-half contexts two sentences at a time,
then ArguAna openings: the recipe of tests/test_vectors_ivf.py) and 200 SQuAD questions as queries (never
stored). `--size N` grows the collection to N vectors around the real ones: each a real passage's vector plus
Gaussian noise of norm `--noise`, renormalised (real embeddings cluster; so do these, around real centres).
Everything goes through the store: `put_document` (1000 chunks a document), `repair(IndexChoice("flat"))`,
`repair(IndexChoice("ivf"))` (trained, nprobe chosen for DOCQA_STORE__IVF_RECALL), then
`dense_search(k=10, candidates=10)` for every query on each, alternating. Exact = numpy over the stored vectors.

    .venv/bin/python benchmarks/ivf_recall.py [--size 300000] [--noise 0.5] [--cache /tmp/ivf-real.npz] [--json]
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

from indexes.backends import StoreOptions  # noqa: E402
from indexes.embedded import EmbeddedStore  # noqa: E402
from indexes.store import IndexChoice, SearchQuery  # noqa: E402
from indexes.types import ChunkInput, DocumentFields  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
IDENTITY = {"backend": "sentence-transformers", "model": "sentence-transformers/all-MiniLM-L6-v2", "dim": 384,
            "max_tokens": 256, "query_prompt": "", "document_prompt": "", "precision": "fp32"}


def real_vectors(cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(3000 passage vectors, 200 question vectors), embedded now or read from `cache`."""
    if cache and cache.exists():
        data = np.load(cache)
        return data["docs"], data["queries"]
    from indexes.embedders import SentenceTransformerEmbedder

    squad = json.loads((EVAL / "squad-v2.0-dev-half" / "dev-v2.0.json").read_text())
    texts: list[str] = []
    for article in squad["data"]:
        for paragraph in article["paragraphs"]:
            sentences = re.split(r"(?<=[.!?])\s+", paragraph["context"])
            texts += [" ".join(sentences[i : i + 2]) for i in range(0, len(sentences), 2)]
    texts = list(dict.fromkeys(texts))
    with gzip.open(EVAL / "beir-arguana" / "corpus.jsonl.gz", "rt") as fh:
        for line in fh:
            if len(texts) >= 3000:
                break
            texts.append(json.loads(line)["text"][:600])
    questions = [q["question"] for a in squad["data"] for p in a["paragraphs"] for q in p["qas"]][::20][:200]
    model = SentenceTransformerEmbedder()
    docs = np.asarray(model.embed_documents(texts[:3000]), dtype=np.float32)
    queries = np.vstack([model.embed_query(q) for q in questions]).astype(np.float32)
    if cache:
        np.savez(cache, docs=docs, queries=queries)
    return docs, queries


def grown(docs: np.ndarray, size: int, noise: float) -> np.ndarray:
    if size <= len(docs):
        return docs[:size]
    rng = np.random.default_rng(1)
    extra = docs[rng.integers(0, len(docs), size - len(docs))]
    jitter = rng.normal(size=extra.shape).astype(np.float32)
    extra = extra + noise * jitter / np.linalg.norm(jitter, axis=1, keepdims=True)
    return np.vstack([docs, extra / np.linalg.norm(extra, axis=1, keepdims=True)]).astype(np.float32)


def measure(store: EmbeddedStore, collection, queries: np.ndarray, exact: list[set[int]]) -> dict:
    times, hits = [], 0
    for q, truth in zip(queries, exact):
        started = time.perf_counter()
        found = store.dense_search(SearchQuery(collection, vector=q, k=10, candidates=10, mode="dense"))
        times.append((time.perf_counter() - started) * 1000)
        hits += len(truth & {i for i, _ in found})
    return {"recall_at_10": round(hits / (10 * len(queries)), 4), "p50_ms": round(statistics.median(times), 2),
            "p99_ms": round(sorted(times)[int(0.99 * (len(times) - 1))], 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=300_000)
    parser.add_argument("--noise", type=float, default=0.5)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    docs, queries = real_vectors(args.cache)
    vectors = grown(docs, args.size, args.noise)
    result: dict = {"size": len(vectors), "noise": args.noise}
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddedStore(Path(tmp), options=StoreOptions(ivf_threshold=10**9))  # built as asked, below
        collection = store.create_collection("bench", IDENTITY)
        started = time.perf_counter()
        for start in range(0, len(vectors), 1000):
            part = vectors[start : start + 1000]
            chunks = [ChunkInput(f"c{start + i}", f"c{start + i}", 0, 1) for i in range(len(part))]
            store.put_document(collection, DocumentFields(f"d{start}", "x", 1), chunks, part)
        result["load_s"] = round(time.perf_counter() - started, 1)
        ids, stored = store.catalog.embeddings(collection_id=collection.id)
        exact = [set(ids[np.argsort(-(stored @ q))[:10]].tolist()) for q in queries]
        # float16 storage against the float32 vectors it rounds: the same exact search over both
        exact32 = [set(ids[np.argsort(-(vectors @ q))[:10]].tolist()) for q in queries]
        top_diff = [float(np.max(np.abs(np.sort(stored @ q)[-10:] - np.sort(vectors @ q)[-10:]))) for q in queries]
        result["float16"] = {"recall_at_10_vs_float32": round(sum(len(a & b) for a, b in zip(exact, exact32))
                                                              / (10 * len(queries)), 4),
                             "max_top10_score_diff": round(max(top_diff), 6),
                             "bytes_per_chunk_vector": 2 * stored.shape[1], "float32_bytes": 4 * stored.shape[1]}
        for kind in ("flat", "ivf"):
            started = time.perf_counter()
            store.repair(collection, IndexChoice(kind))
            built = time.perf_counter() - started
            index = store.vectors(collection)
            result[kind] = {"build_s": round(built, 1), "params": index.params.as_dict(),
                            "file_bytes": store.vector_path(collection).stat().st_size,
                            **measure(store, collection, queries, exact)}
            if not args.json:
                print(kind, json.dumps(result[kind]), flush=True)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
