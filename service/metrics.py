"""Prometheus metrics: requests by route, retrieval (per stage) and generation time, ingestion, index sizes, queues.

Every name here is in the README's table (tests/test_metrics_scrape.py reads them back from a real scrape). Each
worker process of `docqa serve --workers N` keeps its own; a scrape reads the worker that answers it.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
STAGES = ("dense", "lexical", "fusion", "rerank")  # retrieval's stages, timed as `<stage>_ms` in the timings
SHED_QUEUES = ("requests", "answers", "jobs")
FILE_STATUSES = ("ingested", "unchanged", "replaced", "removed", "failed")


class Queue(Protocol):
    """What the load shedder's gates show: requests holding a slot, and requests waiting for one."""

    held: int
    waiting: int


class JobCounts(Protocol):
    """What the job runner shows: jobs waiting for a worker thread, and jobs running."""

    queued: int
    running: int


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


class QueueCollector(Collector):
    """Reads the load shedder's queues and the job runner's counts at scrape time."""

    def __init__(self, metrics: "Metrics") -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[GaugeMetricFamily]:
        held = GaugeMetricFamily("docqa_requests_in_flight", "Requests holding a slot, per queue", labels=["queue"])
        waiting = GaugeMetricFamily("docqa_requests_waiting", "Requests waiting for a slot, per queue", labels=["queue"])
        for name, queue in self.metrics.queues.items():
            held.add_metric([name], queue.held)
            waiting.add_metric([name], queue.waiting)
        jobs = GaugeMetricFamily("docqa_ingest_jobs", "Ingestion jobs of this process, queued or running", labels=["state"])
        counts = self.metrics.jobs
        jobs.add_metric(["queued"], counts.queued if counts else 0)
        jobs.add_metric(["running"], counts.running if counts else 0)
        yield held
        yield waiting
        yield jobs


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
        self.stages = Histogram("docqa_retrieval_stage_seconds", "Retrieval time per stage", ["stage"],
                                buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.generation = Histogram(
            "docqa_generation_seconds", "Generation time", ["generator"], buckets=_LATENCY_BUCKETS, registry=self.registry
        )
        self.ingested = Counter("docqa_ingest_files_total", "Files processed by ingestion", ["status"], registry=self.registry)
        self.chunks = Counter("docqa_ingest_chunks_total", "Chunks written by ingestion", registry=self.registry)
        self.rejected = Counter("docqa_overload_rejections_total", "Requests refused with 503, per full queue", ["queue"],
                                registry=self.registry)
        for status in FILE_STATUSES:
            self.ingested.labels(status)
        for queue in SHED_QUEUES:
            self.rejected.labels(queue)
        self.queues: Mapping[str, Queue] = {}  # set by the load shedder (service/middleware.py)
        self.jobs: JobCounts | None = None  # set by the job runner (service/jobs.py)
        self.registry.register(QueueCollector(self))

    def watch_index(self, sizes: Callable[[], dict[str, dict[str, int]]]) -> None:
        """Report index sizes from `sizes()` at every scrape."""
        self.registry.register(IndexSizeCollector(sizes))

    def observe_retrieval(self, timings: Mapping[str, float]) -> None:
        """A search's or an answer's retrieval time, and each stage's it timed (milliseconds, as in responses)."""
        self.retrieval.observe(timings.get("retrieval_ms", 0) / 1000)
        for stage in STAGES:
            if f"{stage}_ms" in timings:
                self.stages.labels(stage).observe(timings[f"{stage}_ms"] / 1000)

    def observe_ingest(self, results: Iterable[Any]) -> None:
        """Files by status and the chunks written, from an ingestion's FileResults."""
        for r in results:
            self.ingested.labels(r.status).inc()
            if r.status in ("ingested", "replaced"):
                self.chunks.inc(r.chunks)
