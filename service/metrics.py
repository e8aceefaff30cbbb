"""Prometheus metrics: request counts and latencies by route, retrieval/generation time, ingestion, index sizes."""

from __future__ import annotations

from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class IndexSizeCollector(Collector):
    """Reads document and chunk counts per collection at scrape time."""

    def __init__(self, sizes: Callable[[], dict[str, dict[str, int]]]) -> None:
        self.sizes = sizes

    def collect(self) -> Iterable[GaugeMetricFamily]:
        docs = GaugeMetricFamily("docqa_index_documents", "Documents per collection", labels=["collection"])
        chunks = GaugeMetricFamily("docqa_index_chunks", "Chunks per collection", labels=["collection"])
        for name, counts in self.sizes().items():
            docs.add_metric([name], counts["documents"])
            chunks.add_metric([name], counts["chunks"])
        yield docs
        yield chunks


class Metrics:
    """One registry per app, so several apps (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "docqa_http_requests_total", "HTTP requests", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "docqa_http_request_seconds", "HTTP request latency", ["route", "method"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.retrieval = Histogram("docqa_retrieval_seconds", "Retrieval time", buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.generation = Histogram(
            "docqa_generation_seconds", "Generation time", ["generator"], buckets=_LATENCY_BUCKETS, registry=self.registry
        )
        self.ingested = Counter("docqa_ingest_files_total", "Files processed by ingestion", ["status"], registry=self.registry)
        self.rejected = Counter("docqa_overload_rejections_total", "Requests refused with 503", registry=self.registry)

    def watch_index(self, sizes: Callable[[], dict[str, dict[str, int]]]) -> None:
        """Report index sizes from `sizes()` at every scrape."""
        self.registry.register(IndexSizeCollector(sizes))
