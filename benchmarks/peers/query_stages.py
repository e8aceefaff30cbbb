"""Where docqa's hybrid query time goes: each stage of indexes/search.py's Searcher timed on its own, per question.

Ingests the SQuAD dev-half paragraphs (or FaQuAD) through IngestPipeline into an embedded store, then for every
answerable question (or --questions N of them) times, in-process: the query embedding, the dense search (FAISS),
BM25 (SQLite FTS5), the sentence re-scoring of the candidates (their stored chunk and sentence vectors), the fusion,
fetching the hits' rows, and the whole `RetrievalPipeline.search` as a user gets it (BM25 beside the embedding).

    .venv/bin/python benchmarks/peers/query_stages.py [--set squad|faquad] [--questions N] [--limit N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench import load_set, percentile  # noqa: E402  (benchmarks/peers/bench.py)
from indexes.embedded import EmbeddedStore  # noqa: E402
from indexes.embedders import EmbedderSpec  # noqa: E402
from indexes.filters import Filters  # noqa: E402
from indexes.store import SearchQuery  # noqa: E402
from ingest.pipeline import ChunkingOptions, IngestPipeline  # noqa: E402
from service.evaluation.datasets import EvalSet  # noqa: E402
from service.evaluation.harness import _write_documents  # noqa: E402
from service.retrieval import RetrievalPipeline  # noqa: E402
from service.settings import RetrievalConfig  # noqa: E402

K = 10


def measure(set_name: str, limit: int | None, questions: int | None, precision: str) -> dict:
    data = load_set(set_name, limit, questions)
    with tempfile.TemporaryDirectory(prefix="docqa-stages-") as tmp:
        evalset = EvalSet(set_name, {k: (t, x) for k, t, x in data["documents"]}, [])
        files = _write_documents(evalset, Path(tmp) / "files", beir=False, titles=True)
        store = EmbeddedStore(Path(tmp) / "data", EmbedderSpec(precision=precision))
        collection = store.ensure_collection("bench")
        embedder = store.embedder(collection)
        IngestPipeline(store, collection, chunking=ChunkingOptions(max_tokens=embedder.identity.max_tokens),
                       workers=0).ingest(files)
        pipeline = RetrievalPipeline(store, RetrievalConfig())
        searcher = pipeline.searcher
        tuning = searcher.tuning
        stages: dict[str, list[float]] = {s: [] for s in
                                          ("embed_query", "dense", "bm25", "sentences", "fusion", "hits", "search")}
        texts = [q for _, q, _ in data["questions"]]
        for text in texts[:5]:
            pipeline.search(collection, text, mode="hybrid", k=K)
        for text in texts:
            def clock(name, call):
                started = time.perf_counter()
                value = call()
                stages[name].append((time.perf_counter() - started) * 1000)
                return value

            request = SearchQuery(collection, text, None, K, tuning.candidates, "hybrid", Filters())
            vector = clock("embed_query", lambda: embedder.embed_query(text))
            request = replace(request, vector=vector)
            rankings = {"dense": clock("dense", lambda: store.dense_search(request)),
                        "lexical": clock("bm25", lambda: store.lexical_search(request))}
            weight = clock("sentences", lambda: searcher._by_sentence(collection, vector, rankings))
            fused = clock("fusion", lambda: searcher._fuse("hybrid", rankings, weight, False))
            clock("hits", lambda: searcher._hits(collection, fused[:K], rankings))
            clock("search", lambda: pipeline.search(collection, text, mode="hybrid", k=K))
        store.close()
    return {"set": set_name, "questions": len(texts), "precision": precision, "load": os.getloadavg(),
            "stages_ms": {name: {"p50": percentile(v, 50), "p95": percentile(v, 95), "mean": sum(v) / len(v)}
                          for name, v in stages.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="squad")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.set, args.limit, args.questions, args.precision)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['set']}, {result['questions']} questions, {result['precision']}, load {result['load'][0]:.2f}")
    for name, figures in result["stages_ms"].items():
        print(f"  {name:12s} p50 {figures['p50']:7.2f} ms   p95 {figures['p95']:7.2f} ms   mean {figures['mean']:7.2f} ms")


if __name__ == "__main__":
    main()
