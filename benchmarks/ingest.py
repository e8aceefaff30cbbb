"""Ingestion throughput: `docqa ingest`'s pipeline vs raw SentenceTransformer.encode on the same chunk texts.

Corpus: the SQuAD 2.0 dev-half paragraphs in ../shared/eval, one text file each. Both figures come from the
same run and the same loaded model; the pipeline figure includes hashing, parsing, chunking, embedding,
SQLite/FTS5 commits and the FAISS save. Targets: pipeline/raw ≥ 0.85; bf16 raw ≥ 1.7× fp32 raw.

    .venv/bin/python benchmarks/ingest.py [--limit N] [--precisions fp32,bf16] [--repeat 3] [--json]
        [--store URL|postgres]

--store: the same pipeline also ingests the same corpus into PostgreSQL (`postgres`: a throwaway PostgreSQL 16
+ pgvector from pgserver, with a fresh database for every run; a URL: a new collection `bench-<precision>-<run>`
in that database for every run), with the same loaded model, alternating with the embedded store run by run
(embedded first on even runs, PostgreSQL first on odd ones), best of --repeat each; the collection's HNSW
index exists from the start, as in live ingestion. Prints PostgreSQL chunks/s and postgres/embedded
(target ≥ 0.9).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexes.backends import open_store  # noqa: E402
from indexes.embedders import EmbedderSpec, SentenceTransformerEmbedder  # noqa: E402
from indexes.embedded import EmbeddedStore  # noqa: E402
from indexes.store import Embedders  # noqa: E402
from ingest.pipeline import IngestPipeline  # noqa: E402
from pgstore import fresh_database, store_url  # noqa: E402  (benchmarks/pgstore.py)

VECTORS: dict[str, "np.ndarray"] = {}
SQUAD = ROOT.parent / "shared" / "eval" / "squad-v2.0-dev-half" / "dev-v2.0.json"


def write_corpus(folder: Path, limit: int | None) -> int:
    """One .txt file per SQuAD paragraph; returns how many."""
    data = json.loads(SQUAD.read_text())
    paragraphs = [p["context"] for article in data["data"] for p in article["paragraphs"]][:limit]
    for i, text in enumerate(paragraphs):
        (folder / f"p{i:05d}.txt").write_text(text)
    return len(paragraphs)


def measure(precision: str, corpus: Path, work: Path, repeat: int, postgres: str | None = None,
            postgres_admin: str | None = None) -> dict[str, float]:
    """Pipeline and raw encode chunks/s with one loaded model of the given precision: each timed `repeat`
    times, alternately, best time kept (a first pass over new sequence shapes pays one-off kernel set-up,
    and this shared machine's speed drifts; best-of-N with both sides alternating is fair to each).
    With `postgres` (a store URL), the pipeline into PostgreSQL is timed too, alternating with the embedded
    one: a fresh database each run when `postgres_admin` can make one, else a new collection."""
    embedder = SentenceTransformerEmbedder(precision=precision)
    embedder.embed_documents(["warm up"] * 8)
    model = embedder._load()
    spec = EmbedderSpec("sentence-transformers", embedder.model_name, precision=precision)
    pipeline_seconds, raw_seconds, postgres_seconds = [], [], []
    postgres_chunks = 0
    for run in range(repeat):
        sides = ["embedded", "postgres"] if postgres else ["embedded"]
        for side in sides if run % 2 == 0 else reversed(sides):
            if side == "postgres":
                url = fresh_database(postgres_admin, f"ingest_{precision}") if postgres_admin else postgres
                store = open_store(url, work, embedders=Embedders(EmbedderSpec(precision=precision)))
                store.embedders.add(spec, embedder)
                collection = store.ensure_collection(f"bench-{precision}-{run}", embedder)
                pipeline = IngestPipeline(store, collection, workers=0)
                started = time.perf_counter()
                pg_report = pipeline.ingest_paths([corpus])
                postgres_seconds.append(time.perf_counter() - started)
                postgres_chunks = pg_report.chunks
                store.close()
                continue
            store = EmbeddedStore(work / f"data-{precision}-{run}", EmbedderSpec(precision=precision))
            store.embedders.add(spec, embedder)
            collection = store.ensure_collection("bench", embedder)
            pipeline = IngestPipeline(store, collection, workers=0)
            started = time.perf_counter()
            report = pipeline.ingest_paths([corpus])
            pipeline_seconds.append(time.perf_counter() - started)
            texts = [r[0] for r in store.catalog.db.execute("SELECT embed_text FROM chunks ORDER BY id")]
            started = time.perf_counter()
            vectors = model.encode(texts, batch_size=embedder.batch_size, normalize_embeddings=True,
                                   show_progress_bar=False, convert_to_tensor=True).float().cpu().numpy()
            raw_seconds.append(time.perf_counter() - started)
    VECTORS[precision] = vectors
    result = {
        "chunks": report.chunks,
        "pipeline_chunks_per_s": report.chunks / min(pipeline_seconds),
        "raw_chunks_per_s": len(texts) / min(raw_seconds),
        "ratio": (report.chunks / min(pipeline_seconds)) / (len(texts) / min(raw_seconds)),
        "pipeline_seconds": pipeline_seconds,
        "raw_seconds": raw_seconds,
    }
    if postgres:
        result.update({
            "postgres_chunks": postgres_chunks,
            "postgres_chunks_per_s": postgres_chunks / min(postgres_seconds),
            "postgres_seconds": postgres_seconds,
            "postgres_over_embedded": (postgres_chunks / min(postgres_seconds)) / result["pipeline_chunks_per_s"],
        })
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="Only the first N paragraphs.")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--repeat", type=int, default=3, help="Timed runs of each side; the best counts.")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--store", default=None,
                        help="also ingest into PostgreSQL: a postgresql:// URL, or 'postgres' (a throwaway pgserver)")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, store_url(args.store, "ingest") as (postgres, admin):
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        files = write_corpus(corpus, args.limit)
        for precision in args.precisions.split(","):
            results[precision] = measure(precision, corpus, Path(tmp), args.repeat, postgres, admin)
    if "fp32" in results and "bf16" in results:
        results["bf16_raw_speedup_over_fp32_raw"] = results["bf16"]["raw_chunks_per_s"] / results["fp32"]["raw_chunks_per_s"]
        results["bf16_pipeline_speedup_over_fp32_raw"] = results["bf16"]["pipeline_chunks_per_s"] / results["fp32"]["raw_chunks_per_s"]
        cosines = (VECTORS["fp32"] * VECTORS["bf16"]).sum(axis=1)
        results["bf16_vs_fp32_cosine_min"] = float(cosines.min())
        results["bf16_vs_fp32_cosine_mean"] = float(cosines.mean())
    if args.json:
        print(json.dumps({"files": files, "cores": os.cpu_count(), **results}, indent=2))
        return
    print(f"corpus: {files} SQuAD paragraphs, {os.cpu_count()} cores")
    for precision in args.precisions.split(","):
        r = results[precision]
        print(f"{precision}: {r['chunks']} chunks | docqa ingest {r['pipeline_chunks_per_s']:.1f} chunks/s"
              f" | raw encode {r['raw_chunks_per_s']:.1f} chunks/s | ratio {r['ratio']:.3f} (target ≥ 0.85)")
        if "postgres_chunks_per_s" in r:
            print(f"{precision}: {r['postgres_chunks']} chunks | docqa ingest into PostgreSQL"
                  f" {r['postgres_chunks_per_s']:.1f} chunks/s | postgres/embedded {r['postgres_over_embedded']:.3f}"
                  f" (target ≥ 0.9)")
    if "bf16_raw_speedup_over_fp32_raw" in results:
        print(f"bf16 raw / fp32 raw: {results['bf16_raw_speedup_over_fp32_raw']:.2f}×;"
              f" bf16 pipeline / fp32 raw: {results['bf16_pipeline_speedup_over_fp32_raw']:.2f}× (target ≥ 1.7)")
        print(f"bf16 vs fp32 cosine: min {results['bf16_vs_fp32_cosine_min']:.4f}, mean {results['bf16_vs_fp32_cosine_mean']:.4f}")


if __name__ == "__main__":
    main()
