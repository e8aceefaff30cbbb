"""Dense, lexical and hybrid (fused) search over one collection, with filters, returning Hits."""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator, Literal

import numpy as np
from opentelemetry import trace

from indexes.embedders import is_multilingual
from indexes.errors import InvalidInput
from indexes.fusion import CROSS_LANGUAGE_DENSE_WEIGHT, DENSE_WEIGHT, FUSION_METHODS, reciprocal_rank_fusion
from indexes.lexical import query_language, word_count
from indexes.filters import Filters
from indexes.locators import locator_of
from indexes.store import SearchQuery, Store
from indexes.types import Collection, Hit

Mode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[str, ...] = ("dense", "lexical", "hybrid")
DEFAULT_MODE = "hybrid"
DEFAULT_K = 5

# A question of a sentence or two is matched against sentences as well as whole chunks: every candidate's
# dense score is (1 - SENTENCE_WEIGHT) * cosine(chunk) + SENTENCE_WEIGHT * cosine(its best sentence), and
# that sharper dense side gets SENTENCE_DENSE_WEIGHT in the fusion. A longer query (a paragraph, as in
# ArguAna) is compared with whole chunks, and expanded once by pseudo-relevance feedback (Rocchio): its
# vector moves FEEDBACK_WEIGHT toward the mean of the first ranking's top FEEDBACK_CHUNKS chunks and the
# dense side is searched again. Tuned on SQuAD (sentences) and ArguAna (feedback): docs/quality.md.
SENTENCE_WEIGHT = 0.7
SENTENCE_DENSE_WEIGHT = 0.6
SHORT_QUERY_MAX_WORDS = 40
FEEDBACK_CHUNKS = 3
FEEDBACK_WEIGHT = 0.5


@dataclass(frozen=True)
class SearchTuning:
    """How rankings are made and fused; the defaults are the measured ones (docs/quality.md)."""

    fusion: str = "minmax"
    rrf_k: int = 60
    candidates: int = 50
    dense_weight: float = DENSE_WEIGHT
    sentence_weight: float = SENTENCE_WEIGHT
    sentence_dense_weight: float = SENTENCE_DENSE_WEIGHT
    feedback_chunks: int = FEEDBACK_CHUNKS
    feedback_weight: float = FEEDBACK_WEIGHT

    def __post_init__(self) -> None:
        if self.fusion not in FUSION_METHODS:
            raise ValueError(f"fusion must be one of {sorted(FUSION_METHODS)}, got {self.fusion!r}")


# BM25 runs beside the query embedding on these threads, shared by every Searcher of the process, so making
# Searchers (an evaluation makes one per run) never adds threads; they start on first use and last the process.
_LEXICAL_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="docqa-bm25")
tracer = trace.get_tracer("docqa.search")


class Searcher:
    """Runs searches against any Store and fuses what it ranks; a hit whose chunk was deleted after ranking is
    dropped, never half-shown."""

    def __init__(self, store: Store, tuning: SearchTuning | None = None) -> None:
        self.store = store
        self.tuning = tuning or SearchTuning()

    def search(
        self, collection: Collection, query: str, *, mode: str = DEFAULT_MODE, k: int = DEFAULT_K,
        filters: Filters | None = None, timings: dict[str, float] | None = None,
    ) -> list[Hit]:
        """The top `k` hits for `query`, best first; `timings` gets each stage's milliseconds (dense_ms,
        lexical_ms, fusion_ms), each stage is a span (dense, lexical, fusion) of the current trace."""
        if mode not in MODES:
            raise InvalidInput(f"mode must be one of {list(MODES)}, got {mode!r}")
        if k <= 0:
            raise InvalidInput(f"k must be > 0, got {k}")
        timings = {} if timings is None else timings
        request = SearchQuery(collection, query, None, k, self.tuning.candidates, mode, filters or Filters())
        rankings: dict[str, list[tuple[int, float]]] = {}
        # BM25 runs in the store (SQLite, PostgreSQL) and the query embedding in torch, both without the GIL; the
        # BM25 thread runs in this one's context, so its span has this trace's parent (and request id).
        lexical = (_LEXICAL_THREADS.submit(contextvars.copy_context().run, self._lexical, request, timings)
                   if mode in ("lexical", "hybrid") else None)
        if mode in ("dense", "hybrid"):
            with _stage("dense", timings) as span:
                vector = self.store.embedder(collection).embed_query(query)
                request = replace(request, vector=vector)
                rankings["dense"] = self.store.dense_search(request)
                span.set_attribute("docqa.hits", len(rankings["dense"]))
        if lexical is not None:
            rankings["lexical"] = lexical.result()
        if mode == "lexical":
            return self._hits(collection, rankings["lexical"][:k], rankings)
        with _stage("fusion", timings) as span:
            cross_language = self.cross_language(collection, query)
            short = word_count(query) <= SHORT_QUERY_MAX_WORDS
            dense_weight = self.tuning.dense_weight
            if short and not cross_language:
                dense_weight = self._by_sentence(collection, vector, rankings)
            fused = self._fuse(mode, rankings, dense_weight, cross_language)
            if not short and self.tuning.feedback_chunks > 0:
                rankings["dense"] = self.store.dense_search(replace(request, vector=self._feedback(vector, fused)))
                fused = self._fuse(mode, rankings, dense_weight, cross_language)
            span.set_attributes({"docqa.fusion": self.tuning.fusion if mode == "hybrid" else "none",
                                 "docqa.hits": len(fused)})
        return self._hits(collection, fused[:k], rankings)

    def _lexical(self, request: SearchQuery, timings: dict[str, float]) -> list[tuple[int, float]]:
        with _stage("lexical", timings) as span:
            ranking = self.store.lexical_search(request)
            span.set_attribute("docqa.hits", len(ranking))
        return ranking

    def _fuse(
        self, mode: str, rankings: dict[str, list[tuple[int, float]]], dense_weight: float, cross_language: bool
    ) -> list[tuple[int, float]]:
        if mode == "dense":
            return rankings["dense"]
        weights = self.weights(dense_weight, cross_language)
        return FUSION_METHODS[self.tuning.fusion](rankings, k=self.tuning.rrf_k, weights=weights)

    def _feedback(self, vector: np.ndarray, ranked: list[tuple[int, float]]) -> np.ndarray:
        """The query vector moved toward the mean of the top-ranked chunks' vectors, at unit length."""
        _, top = self.store.embeddings([i for i, _ in ranked[: self.tuning.feedback_chunks]])
        if not len(top):  # nothing ranked, or deleted since
            return vector
        moved = vector + self.tuning.feedback_weight * top.mean(axis=0)
        return (moved / np.linalg.norm(moved)).astype(np.float32)

    @staticmethod
    def cross_language(collection: Collection, query: str) -> bool:
        """Whether an English-only embedder meets a question in another language (its dense side is noise)."""
        return query_language(query) not in (None, "en") and not is_multilingual(collection.embedder)

    def weights(self, dense_weight: float, cross_language: bool) -> dict[str, float] | None:
        """Fusion weights: `dense_weight` (RRF: equal), or CROSS_LANGUAGE_DENSE_WEIGHT across languages."""
        if cross_language:
            return {"dense": CROSS_LANGUAGE_DENSE_WEIGHT, "lexical": 1.0 - CROSS_LANGUAGE_DENSE_WEIGHT}
        if self.tuning.fusion == "rrf":
            return None
        return {"dense": dense_weight, "lexical": 1.0 - dense_weight}

    def _by_sentence(
        self, collection: Collection, vector: np.ndarray, rankings: dict[str, list[tuple[int, float]]]
    ) -> float:
        """For a short question, re-score the dense side: every candidate of either list by its chunk and its
        best sentence (`sentence_weight`; a chunk stored without sentence vectors by the chunk alone). Returns
        the dense side's fusion weight: `sentence_dense_weight` if re-scored, else `dense_weight`."""
        if self.tuning.sentence_weight <= 0:
            return self.tuning.dense_weight
        ids = list(dict.fromkeys(i for ranking in rankings.values() for i, _ in ranking))
        stored = self.store.chunk_vectors(ids, int(collection.embedder["dim"]))
        if all(sentences is None for _, sentences in stored.values()):
            return self.tuning.dense_weight
        found = [i for i in ids if i in stored]  # a chunk deleted since it was ranked drops out
        wholes = np.stack([stored[i][0] for i in found]) @ vector
        # every sentence of every candidate in one product; a chunk without sentences stands for itself
        parts = [sentences if sentences is not None and len(sentences) else chunk[None, :]
                 for chunk, sentences in (stored[i] for i in found)]
        sentences = np.concatenate(parts).astype(np.float32) @ vector
        best = np.maximum.reduceat(sentences, np.cumsum([0] + [len(m) for m in parts[:-1]]))
        weight = self.tuning.sentence_weight
        mixed = (1.0 - weight) * wholes + weight * best
        scored = list(zip(found, mixed.tolist()))
        rankings["dense"] = sorted(scored, key=lambda kv: (-kv[1], kv[0]))
        return self.tuning.sentence_dense_weight

    def _hits(
        self, collection: Collection, ranked: list[tuple[int, float]], rankings: dict[str, list[tuple[int, float]]]
    ) -> list[Hit]:
        rows = self.store.chunks([cid for cid, _ in ranked])
        per_retriever = {name: dict(r) for name, r in rankings.items()}
        hits = []
        for chunk_id, score in ranked:
            row = rows.get(chunk_id)
            if row is None:  # deleted between ranking and fetching: never return half a document
                continue
            hits.append(
                Hit(
                    chunk_id=chunk_id, document_id=row.document_id, collection=collection.name, text=row.text,
                    score=score, title=row.title or row.source, source=row.source, ordinal=row.ordinal,
                    start=row.start, end=row.end, page_start=row.page_start, page_end=row.page_end,
                    heading_path=row.heading_path, metadata=row.metadata,
                    scores={n: s[chunk_id] for n, s in per_retriever.items() if chunk_id in s},
                    locator=locator_of(row.locator, row.page_start), ocr=row.ocr,
                )
            )
        return hits


@contextmanager
def _stage(name: str, timings: dict[str, float]) -> Iterator[trace.Span]:
    """A retrieval stage: a span of the current trace, its milliseconds into `timings` as `<name>_ms`."""
    started = time.perf_counter()
    with tracer.start_as_current_span(name) as span:
        yield span
    timings[f"{name}_ms"] = round((time.perf_counter() - started) * 1000, 2)


__all__ = ["Searcher", "SearchTuning", "MODES", "DEFAULT_MODE", "DEFAULT_K", "reciprocal_rank_fusion"]
