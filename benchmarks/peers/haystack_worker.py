"""Haystack 2.x's side of benchmarks/peers, run in benchmarks/peers/.venv-haystack (see common.py for the phases).

Indexing as Haystack's documentation builds it: DocumentSplitter (by word; 200 words, its default, is the nearest
to docqa's 256-token budget it offers: it cannot count the model's tokens) → SentenceTransformersDocumentEmbedder
(the article title embedded with each chunk, `meta_fields_to_embed`) → DocumentWriter into an InMemoryDocumentStore
(its BM25 index is built as documents are written). Dense: SentenceTransformersTextEmbedder →
InMemoryEmbeddingRetriever. Hybrid: that and InMemoryBM25Retriever joined by a DocumentJoiner, one pipeline per
join mode (reciprocal_rank_fusion, distribution_based_rank_fusion).
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import (  # noqa: E402
    K, finish, raw_encode_seconds, read_job, run_queries, set_query_threads, timed, unique_keys, window_figures,
)

WORDS = 200
JOIN_MODES = {"hybrid": "reciprocal_rank_fusion", "hybrid:dbrf": "distribution_based_rank_fusion"}


def main() -> None:
    job = read_job()
    from haystack import Document, Pipeline
    from haystack.components.embedders import SentenceTransformersDocumentEmbedder, SentenceTransformersTextEmbedder
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.preprocessors import DocumentSplitter
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
    from haystack.components.writers import DocumentWriter
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack.utils import ComponentDevice

    device = ComponentDevice.from_str("cpu")
    model_kwargs = {}
    if job["precision"] == "bf16":
        import torch

        model_kwargs = {"dtype": torch.bfloat16}
    common = dict(model=job["model"], device=device, batch_size=job["batch_size"], progress_bar=False,
                  normalize_embeddings=True, local_files_only=True, model_kwargs=model_kwargs)
    documents = [Document(content=text, meta={"title": title, "key": key}) for key, title, text in job["documents"]]

    def ingest() -> tuple[InMemoryDocumentStore, SentenceTransformersDocumentEmbedder, int]:
        store = InMemoryDocumentStore()
        embedder = SentenceTransformersDocumentEmbedder(meta_fields_to_embed=["title"], **common)
        pipeline = Pipeline()
        pipeline.add_component("splitter", DocumentSplitter(split_by="word", split_length=WORDS, split_overlap=0))
        pipeline.add_component("embedder", embedder)
        pipeline.add_component("writer", DocumentWriter(store))
        pipeline.connect("splitter", "embedder")
        pipeline.connect("embedder", "writer")
        written = pipeline.run({"splitter": {"documents": documents}})["writer"]["documents_written"]
        return store, embedder, written

    store, embedder, chunks = ingest()
    cold_done = time.time()
    warm = [timed(ingest)[1] for _ in range(job["warm"])]
    model = embedder.embedding_backend.model
    stored = store.filter_documents()
    texts = ["\n".join([d.meta["title"], d.content]) for d in stored]  # what the embedder embedded
    result = {"chunks": chunks, "warm_s": warm, "raw_s": raw_encode_seconds(model, texts, job["batch_size"]),
              **window_figures(model, texts), "chunking": f"{WORDS} words, no overlap (DocumentSplitter)"}

    def text_embedder() -> SentenceTransformersTextEmbedder:
        return SentenceTransformersTextEmbedder(**{k: v for k, v in common.items() if k != "batch_size"})

    dense = Pipeline()
    dense.add_component("embedder", text_embedder())
    dense.add_component("retriever", InMemoryEmbeddingRetriever(store, top_k=K))
    dense.connect("embedder.embedding", "retriever.query_embedding")
    modes = {"dense": lambda q: unique_keys(d.meta["key"] for d in
                                            dense.run({"embedder": {"text": q}})["retriever"]["documents"])}
    for name, join_mode in JOIN_MODES.items():
        hybrid = Pipeline()
        hybrid.add_component("embedder", text_embedder())
        hybrid.add_component("dense", InMemoryEmbeddingRetriever(store, top_k=K))
        hybrid.add_component("bm25", InMemoryBM25Retriever(store, top_k=K))
        hybrid.add_component("joiner", DocumentJoiner(join_mode=join_mode, top_k=K))
        hybrid.connect("embedder.embedding", "dense.query_embedding")
        hybrid.connect("dense", "joiner")
        hybrid.connect("bm25", "joiner")
        modes[name] = (lambda p: lambda q: unique_keys(
            d.meta["key"] for d in p.run({"embedder": {"text": q}, "bm25": {"query": q}})["joiner"]["documents"]))(hybrid)
    result["query_threads"] = set_query_threads(job.get("query_threads"))
    result["queries"] = run_queries(job, modes) if job["queries"] else {}
    result["fusion"] = {name: mode for name, mode in JOIN_MODES.items()}
    finish(job, result, cold_done)


if __name__ == "__main__":
    main()
