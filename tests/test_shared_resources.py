"""What a process builds once however many ask: the BM25 threads every Searcher shares, and each LLM backend of
the generator registry (two first requests at once must not load a model twice)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from fake_catalog import IDENTITY, unit_vectors
from indexes import plugins
from indexes.embedded import EmbeddedStore
from indexes.search import Searcher
from indexes.types import ChunkInput, DocumentFields
from service.generators.base import GeneratorPlugin
from service.generators.registry import GeneratorRegistry
from service.settings import GeneratorConfig


def bm25_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("docqa-bm25")]


def test_searchers_share_one_bounded_pool_of_bm25_threads(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "data")
    docs = store.create_collection("docs", IDENTITY)
    text = "the staging cluster has twelve nodes"
    store.put_document(docs, DocumentFields("a.md", "sha", 1, 1.0, text=text),
                       [ChunkInput(text, text, 0, len(text), None, None, ())], unit_vectors(1))
    searchers = [Searcher(store) for _ in range(12)]  # as many as a process may hold (an app, evaluations)
    for searcher in searchers:
        assert [h.source for h in searcher.search(docs, "staging nodes", mode="lexical")] == ["a.md"]
    assert 1 <= len(bm25_threads()) <= 4


def test_two_first_requests_at_once_build_a_backend_once(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []

    def slow_backend(config: GeneratorConfig, scorer: object) -> object:
        time.sleep(0.3)  # as loading a model does
        built.append(object())
        return built[-1]

    class SlowSettings(BaseModel):
        pass

    real_load = plugins.load
    installed = {**real_load(plugins.GENERATORS), "slow": GeneratorPlugin(SlowSettings, slow_backend)}
    monkeypatch.setattr(plugins, "load", lambda group: installed if group == plugins.GENERATORS else real_load(group))
    generators = GeneratorRegistry(GeneratorConfig(backend="slow", enabled=["slow", "extractive"]))
    start = threading.Barrier(3)
    got: list[object] = []

    def first_request() -> None:
        start.wait()
        got.append(generators.get("slow"))

    threads = [threading.Thread(target=first_request) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and got == built * 3
