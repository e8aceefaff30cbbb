"""LlamaIndex's side of benchmarks/peers, run in benchmarks/peers/.venv-llamaindex (see common.py for the phases).

Indexing as LlamaIndex's documentation builds it: Documents (the article title as metadata, which LlamaIndex embeds
with each chunk) → SentenceSplitter → VectorStoreIndex.from_documents with HuggingFaceEmbedding (its default
in-memory vector store), and a BM25Retriever (llama-index-retrievers-bm25, bm25s) built over the same nodes; both
count as ingestion. The splitter counts the model's own word pieces (its `tokenizer` argument) with a chunk size
of the model's window less [CLS] and [SEP], the nearest it comes to docqa's budget (by default it counts tiktoken
tokens of another model). Dense: the index's retriever. Hybrid: QueryFusionRetriever over the two, one query (no
LLM rewriting), in each fusion mode (reciprocal_rerank, relative_score, dist_based_score).
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import (  # noqa: E402
    K, finish, raw_encode_seconds, read_job, run_queries, set_query_threads, timed, unique_keys, window_figures,
)

FUSION = {"hybrid": "reciprocal_rerank", "hybrid:relative": "relative_score", "hybrid:dist": "dist_based_score"}
STEMMERS = {"en": ("english", "en"), "pt": ("portuguese", "pt")}


def main() -> None:
    job = read_job()
    import Stemmer
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.core.schema import MetadataMode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.retrievers.bm25 import BM25Retriever

    Settings.llm = MockLLM()  # nothing here calls an LLM; this keeps LlamaIndex from looking for OpenAI
    model_kwargs = {}
    if job["precision"] == "bf16":
        import torch

        model_kwargs = {"dtype": torch.bfloat16}
    embed_model = HuggingFaceEmbedding(model_name=job["model"], device="cpu", embed_batch_size=job["batch_size"],
                                       normalize=True, model_kwargs=model_kwargs)
    model = embed_model._model
    Settings.embed_model = embed_model
    chunk_size = model.max_seq_length - 2  # the splitter counts no special tokens
    splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=0, tokenizer=model.tokenizer.tokenize)
    stemmer_name, stopwords = STEMMERS.get(job["language"], STEMMERS["en"])
    documents = [Document(text=text, metadata={"title": title, "key": key}, excluded_embed_metadata_keys=["key"],
                          excluded_llm_metadata_keys=["key"]) for key, title, text in job["documents"]]

    def ingest() -> tuple[VectorStoreIndex, BM25Retriever, list]:
        index = VectorStoreIndex.from_documents(documents, transformations=[splitter], embed_model=embed_model)
        nodes = list(index.docstore.docs.values())
        bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=K, stemmer=Stemmer.Stemmer(stemmer_name),
                                           language=stopwords)
        return index, bm25, nodes

    index, bm25, nodes = ingest()
    cold_done = time.time()
    warm = [timed(ingest)[1] for _ in range(job["warm"])]
    texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]  # what the embedder embedded
    result = {"chunks": len(nodes), "warm_s": warm, "raw_s": raw_encode_seconds(model, texts, job["batch_size"]),
              **window_figures(model, texts),
              "chunking": f"{chunk_size} word pieces of the model, no overlap (SentenceSplitter)"}
    dense = index.as_retriever(similarity_top_k=K)
    modes = {"dense": lambda q: unique_keys(h.node.metadata["key"] for h in dense.retrieve(q))}
    for name, mode in FUSION.items():
        fusion = QueryFusionRetriever([dense, bm25], similarity_top_k=K, num_queries=1, mode=mode, use_async=False,
                                      llm=MockLLM())
        modes[name] = (lambda f: lambda q: unique_keys(h.node.metadata["key"] for h in f.retrieve(q)))(fusion)
    result["query_threads"] = set_query_threads(job.get("query_threads"))
    result["queries"] = run_queries(job, modes) if job["queries"] else {}
    result["fusion"] = dict(FUSION)
    finish(job, result, cold_done)


if __name__ == "__main__":
    main()
