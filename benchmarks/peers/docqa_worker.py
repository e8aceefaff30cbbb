"""docqa's side of benchmarks/peers, run in docqa's own venv (see common.py for the phases).

Through docqa's real code: the set's paragraphs written as files named by their article titles, as `docqa eval`
writes them (service/evaluation/harness.py), ingested by IngestPipeline into an embedded store (SQLite catalog,
FTS5, FAISS, sentence vectors; chunks sized by the model's own tokenizer to its window, the title as heading
context), one document committed per transaction; queried through the service's RetrievalPipeline, dense and
hybrid (docqa's default fusion), as /v1/search and `docqa eval` are, with the torch threads `docqa serve` sets
(DOCQA_EMBEDDER__TORCH_THREADS, 1 by default: service/app.py) unless the job sets them; ingestion with torch's
own (every core), as `docqa ingest` runs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from common import (  # noqa: E402
    K, finish, raw_encode_seconds, read_job, run_queries, set_query_threads, timed, unique_keys, window_figures,
)


def main() -> None:
    job = read_job()
    from indexes.embedded import EmbeddedStore
    from indexes.embedders import EmbedderSpec, SentenceTransformerEmbedder
    from ingest.pipeline import ChunkingOptions, IngestPipeline
    from service.evaluation.datasets import EvalSet
    from service.evaluation.harness import _write_documents
    from service.retrieval import RetrievalPipeline
    from service.settings import EmbedderConfig, RetrievalConfig

    work = Path(job["work"])
    evalset = EvalSet(job["dataset"], {key: (title, text) for key, title, text in job["documents"]}, [])
    files = _write_documents(evalset, work / "files", beir=False, titles=True)
    embedder = SentenceTransformerEmbedder(job["model"], precision=job["precision"], batch_size=job["batch_size"])
    spec = EmbedderSpec("sentence-transformers", job["model"], precision=job["precision"],
                        batch_size=job["batch_size"])
    runs = iter(range(1000))

    def ingest() -> tuple[EmbeddedStore, object, int]:
        store = EmbeddedStore(work / f"data-{next(runs)}", spec)
        store.embedders.add(spec, embedder)  # the loaded model, as one process's store shares it
        collection = store.ensure_collection("bench", embedder)
        options = ChunkingOptions(max_tokens=embedder.identity.max_tokens, heading_context=True)
        report = IngestPipeline(store, collection, chunking=options, workers=0).ingest(files)
        if report.failures:
            raise SystemExit(f"docqa: {len(report.failures)} documents failed, e.g. {report.failures[0]}")
        return store, collection, report.chunks

    store, collection, chunks = ingest()
    cold_done = time.time()
    warm = []
    for _ in range(job["warm"]):
        (other, _, _), seconds = timed(ingest)
        other.close()
        warm.append(seconds)
    model = embedder._load()
    texts = [r[0] for r in store.catalog.db.execute("SELECT embed_text FROM chunks ORDER BY id")]
    result = {"chunks": chunks, "warm_s": warm, "raw_s": raw_encode_seconds(model, texts, job["batch_size"]),
              **window_figures(model, texts),
              "chunking": f"{embedder.identity.max_tokens} word pieces of the model, specials and title included"}
    pipeline = RetrievalPipeline(store, RetrievalConfig())
    modes = {mode: (lambda m: lambda q: unique_keys(
        h.source for h in pipeline.search(collection, q, mode=m, k=K).hits))(mode) for mode in ("dense", "hybrid")}
    result["query_threads"] = set_query_threads(job.get("query_threads") or EmbedderConfig().torch_threads)
    result["queries"] = run_queries(job, modes) if job["queries"] else {}
    result["fusion"] = {"hybrid": RetrievalConfig().fusion}
    finish(job, result, cold_done)


if __name__ == "__main__":
    main()
