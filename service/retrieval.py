"""The one retrieval pipeline every caller goes through — /v1/search, /v1/ask, conversations, the OpenAI-compatible
endpoint, `docqa search` and `docqa eval` — so what is measured is what users get.

Stages: candidates and fusion (indexes.search.Searcher: dense and BM25 rankings, fused), then an optional
re-ranker that re-scores the top `candidates` fused hits and reorders them, then context building (merge_hits:
neighbouring chunks become one passage, best first, within a character budget). A re-ranker that fails leaves
the fused order, with a warning the response carries; it never fails the request.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from opentelemetry import trace

from indexes.errors import InvalidInput, NotFound
from indexes.filters import Filters
from indexes.locators import merged, same_place
from indexes.search import Searcher
from indexes.store import Store
from indexes.types import Collection, Hit
from service.errors import RerankerUnavailable
from service.generators.base import Passage
from service.rerankers import Reranker
from service.settings import RetrievalConfig

log = logging.getLogger("docqa.retrieval")
RERANK = "rerank"  # the re-ranker's score, beside each retriever's in Hit.scores
tracer = trace.get_tracer("docqa.retrieval")


@dataclass
class Retrieved:
    """Hits best first, what each stage took, and any warnings for the response (a re-ranker that failed)."""

    hits: list[Hit]
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def best_rerank(self) -> float | None:
        """The re-ranker's best score among the hits (None: nothing was re-ranked)."""
        scores = [h.scores[RERANK] for h in self.hits if RERANK in h.scores]
        return max(scores) if scores else None


class RetrievalPipeline:
    """Searcher → optional re-ranker → merged passages, over any Store, with the configured retrieval."""

    def __init__(self, store: Store, retrieval: RetrievalConfig, reranker: Reranker | None = None,
                 candidates: int = 30) -> None:
        if candidates <= 0:
            raise ValueError(f"candidates must be > 0, got {candidates}")
        self.store = store
        self.retrieval = retrieval
        self.searcher = Searcher(store, retrieval.tuning())
        self.reranker = reranker
        self.candidates = candidates

    def search(self, collection: Collection, query: str, *, mode: str | None = None, k: int | None = None,
               filters: Filters | None = None) -> Retrieved:
        """The top `k` hits (default: the configured top_k): fused, then, with a re-ranker, the top `candidates`
        of max(k, candidates) fused hits reordered by its scores (ties keep the fused order) before the cut."""
        k = self.retrieval.top_k if k is None else k
        if k <= 0:
            raise InvalidInput(f"k must be > 0, got {k}")
        mode = mode or self.retrieval.mode
        attributes = {"docqa.collection": collection.name, "docqa.mode": mode, "docqa.k": k}
        with tracer.start_as_current_span("retrieve", attributes=attributes) as span:
            started = time.perf_counter()
            fetch = max(k, self.candidates) if self.reranker is not None else k
            stages: dict[str, float] = {}
            hits = self.searcher.search(collection, query, mode=mode, k=fetch, filters=filters, timings=stages)
            result = Retrieved(hits[:k])
            if self.reranker is not None and hits:
                mark = time.perf_counter()
                with tracer.start_as_current_span("rerank", attributes={"docqa.reranker": self.reranker.name,
                                                                         "docqa.candidates": min(len(hits), self.candidates)}):
                    result = self._rerank(query, hits, k)
                result.timings["rerank_ms"] = _ms(mark)
            result.timings.update(stages)
            result.timings["retrieval_ms"] = _ms(started)  # the whole search, re-ranking included
            span.set_attribute("docqa.hits", len(result.hits))
        return result

    def _rerank(self, query: str, hits: list[Hit], k: int) -> Retrieved:
        assert self.reranker is not None
        head, tail = hits[: self.candidates], hits[self.candidates:]
        try:
            scores = _checked(self.reranker.rerank(query, [h.text for h in head]), len(head))
        except Exception as exc:  # noqa: BLE001 - any failure of the second stage leaves the first stage's order
            detail = exc.detail if isinstance(exc, RerankerUnavailable) else f"{type(exc).__name__}: {exc}"
            log.warning("re-ranker failed; fused order kept", extra={"reranker": self.reranker.name, "error": detail})
            trace.get_current_span().set_attribute("docqa.error", detail)
            return Retrieved(hits[:k], warnings=[f"re-ranking failed, passages are in fused order: {detail}"])
        scored = [replace(h, scores={**h.scores, RERANK: s}) for h, s in zip(head, scores)]
        order = sorted(range(len(scored)), key=lambda i: -scores[i])  # sorted() is stable: ties keep fused order
        return Retrieved(([scored[i] for i in order] + tail)[:k])

    def context(self, hits: Sequence[Hit]) -> list[Passage]:
        """The hits as numbered passages for a generator, within the configured character budget."""
        return merge_hits(hits, self.store.document_text, self.retrieval.context_chars)

    def warm_up(self) -> None:
        """Load the re-ranker's model now, if it has one to load."""
        warm = getattr(self.reranker, "warm_up", None)
        if warm is not None:
            warm()


def _checked(scores: Any, count: int) -> list[float]:
    """The re-ranker's scores, if they are one finite number per passage; RerankerUnavailable otherwise."""
    values = list(scores)
    if len(values) != count:
        raise RerankerUnavailable(f"the re-ranker gave {len(values)} scores for {count} passages")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        raise RerankerUnavailable("the re-ranker gave a score that is not a finite number")
    return [float(v) for v in values]


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


def merge_hits(hits: Sequence[Hit], document_text: Any, budget_chars: int) -> list[Passage]:
    """Merge adjacent or overlapping chunks of one document, best first, within a character budget."""
    groups: list[list[Hit]] = []
    for hit in hits:
        touching = [g for g in groups if g[0].document_id == hit.document_id and any(_touch(hit, h) for h in g)]
        if not touching:
            groups.append([hit])
            continue
        # a hit between two groups ("0, 2, then 1") joins them, where the better of them stood
        touching[0].append(hit)
        for other in touching[1:]:
            touching[0].extend(other)
        groups = [g for g in groups if not any(g is other for other in touching[1:])]
    passages: list[Passage] = []
    used = 0
    for group in groups:
        group.sort(key=lambda h: h.start)
        text = _group_text(group, document_text)
        if passages and used + len(text) > budget_chars:
            continue
        used += len(text)
        first = group[0]
        passages.append(
            Passage(
                n=len(passages) + 1, text=text, title=first.title, source=first.source, page=first.page_start,
                heading_path=first.heading_path, document_id=first.document_id,
                chunk_ids=tuple(h.chunk_id for h in group), score=max(h.score for h in group),
                headings=tuple(dict.fromkeys(t for h in group for t in h.heading_path)),
                locator=merged([h.locator for h in group]), ocr=any(h.ocr for h in group),
                rerank=max((h.scores[RERANK] for h in group if RERANK in h.scores), default=None),
            )
        )
    return passages


def _touch(a: Hit, b: Hit) -> bool:
    """Neighbouring or overlapping chunks in the same place (a citation names one page, slide or sheet)."""
    same_page = (a.page_start, a.page_end) == (b.page_start, b.page_end) and same_place(a.locator, b.locator)
    return same_page and (abs(a.ordinal - b.ordinal) <= 1 or (a.start < b.end and b.start < a.end))


def _group_text(group: list[Hit], document_text: Any) -> str:
    """The document's text from the first chunk to the last, with the heading of each chunk that starts a new
    section as a line of its own (parsers keep headings out of the text, so a merged passage would lose them)."""
    if len(group) == 1:
        return group[0].text
    try:
        full = document_text(group[0].document_id)
    except NotFound:  # replaced since the search: its chunks' own texts still hold
        full = ""
    if not full:
        return "\n".join(h.text for h in group)
    parts, cursor, path = [], group[0].start, group[0].heading_path
    for hit in group:
        if hit.start >= cursor and hit.heading_path != path and hit.heading_path:
            gap, heading = full[cursor:hit.start], hit.heading_path[-1]
            line = re.compile(rf"^[ \t]*{re.escape(heading)}[ \t]*$", re.MULTILINE)
            present = line.search(full, cursor, min(len(full), hit.start + len(heading) + 2))  # a PDF keeps its headings
            parts.append(gap if present else gap.rstrip() + f"\n\n{heading}\n")
            cursor = hit.start
        path = hit.heading_path
        if hit.end > cursor:
            parts.append(full[cursor:hit.end])
            cursor = hit.end
    return "".join(parts)
