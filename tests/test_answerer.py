"""The Answerer around its generator, with the real model over two samples: when it abstains (no passages,
abstention off, the evidence floor) and that requests answered at once each keep their own ranking."""

from __future__ import annotations

import copy
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from indexes.embedded import EmbeddedStore
from indexes.embedders import EmbedderSpec
from indexes.filters import Filters
from ingest.pipeline import IngestPipeline, SourceFile
from service.answer import Answer, Answerer, AskRequest
from service.generators.registry import GeneratorRegistry
from service.settings import AbstentionConfig, GeneratorConfig, RetrievalConfig

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
QUESTIONS = [
    "How many nodes does the staging cluster have?",
    "How many nodes does production run?",
    "What is the deploy tool called?",
    "How much is the on-call stipend?",
    "Quantos dias de férias por ano?",
    "Quantos dias de férias posso vender?",
]
UNANSWERABLE = "How many nodes does the Recife cluster have?"  # no passage mentions Recife


class CountingEmbedder:
    """The real model, counting query embeddings by text."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.queries: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def embed_query(self, text: str):
        with self._lock:
            self.queries[text] += 1
        return self.inner.embed_query(text)


class GatedRegistry(GeneratorRegistry):
    """The configured generators, except that while `gate` is set each starts writing only once every request
    has got that far: all requests have ranked their sentences, none has picked from them yet."""

    gate: threading.Barrier | None = None

    def get(self, name: str | None, scorer=None):
        generator = super().get(name, scorer)
        return generator if self.gate is None else Gated(generator, self.gate)


class Gated:
    """A generator that waits at the gate before its first word."""

    def __init__(self, inner, gate: threading.Barrier) -> None:
        self.inner, self.gate, self.name = inner, gate, inner.name

    def generate(self, question: str, passages):
        self.gate.wait(timeout=60)
        yield from self.inner.generate(question, passages)


@pytest.fixture(scope="module")
def counting(tmp_path_factory, embedder) -> tuple[Answerer, object, CountingEmbedder]:
    """handbook.md and politica-de-ferias.md in one collection; the Answerer, the collection and the counter."""
    store = EmbeddedStore(tmp_path_factory.mktemp("answerer") / "data", EmbedderSpec())
    store.embedders.add(EmbedderSpec(), embedder)
    collection = store.ensure_collection("default", embedder)
    files = [SAMPLES / "handbook.md", SAMPLES / "politica-de-ferias.md"]
    IngestPipeline(store, collection, workers=0).ingest([SourceFile(p, p.name) for p in files])
    counter = CountingEmbedder(embedder)
    store.embedders.add(EmbedderSpec(), counter)  # what the answerer embeds with from here on
    answerer = Answerer(store, GatedRegistry(GeneratorConfig()), RetrievalConfig(), AbstentionConfig())
    return answerer, collection, counter


def lone(answerer: Answerer, collection, counter: CountingEmbedder, question: str) -> tuple[Answer, int]:
    """The answer to a question asked alone, and how many query embeddings it took."""
    before = counter.queries[question]
    answer = answerer.ask(AskRequest(question, collection))
    return answer, counter.queries[question] - before


def abstaining(answerer: Answerer, config: AbstentionConfig) -> Answerer:
    """The same answerer (store, generators, caches) with other abstention settings."""
    other = copy.copy(answerer)
    other.abstention = config
    return other


def test_requests_at_once_do_the_work_of_requests_alone_and_get_the_same_answers(counting) -> None:
    """Each request ranks its passages' sentences once: the answerer's ranking (for the verdict) is the one the
    extractive generator picks from. A cache shared by the requests (the one-slot cache this replaced) is
    overwritten by the others between the two, and the generator ranks them all again."""
    answerer, collection, counter = counting
    alone = {q: lone(answerer, collection, counter, q) for q in QUESTIONS}
    assert not any(answer.abstained for answer, _ in alone.values()), {q: a.reason for q, (a, _) in alone.items()}
    answerer.ask(AskRequest(UNANSWERABLE, collection))  # another request in between, as on any busy service
    counter.queries.clear()
    answerer.generators.gate = threading.Barrier(len(QUESTIONS))
    try:
        with ThreadPoolExecutor(len(QUESTIONS)) as pool:
            together = dict(zip(QUESTIONS, pool.map(lambda q: answerer.ask(AskRequest(q, collection)), QUESTIONS)))
    finally:
        answerer.generators.gate = None
    assert dict(counter.queries) == {q: calls for q, (_, calls) in alone.items()}
    for question, answer in together.items():
        assert (answer.text, answer.cited) == (alone[question][0].text, alone[question][0].cited), question


def test_interleaved_streams_keep_their_own_ranking(counting) -> None:
    """The same, step by step in one thread: A ranks, B ranks, then A's generator picks."""
    answerer, collection, counter = counting
    first, second = QUESTIONS[0], QUESTIONS[4]
    _, calls = lone(answerer, collection, counter, first)
    answerer.ask(AskRequest(UNANSWERABLE, collection))
    before = counter.queries[first]
    a = answerer.stream(AskRequest(first, collection))
    b = answerer.stream(AskRequest(second, collection))
    assert next(a).kind == "citations" and next(b).kind == "citations"
    done = [event.data for event in a if event.kind == "done"]
    b.close()
    assert counter.queries[first] - before == calls
    assert "12 nodes" in done[0].text


def test_no_passage_abstains_before_the_generator_runs(counting) -> None:
    answerer, collection, _ = counting
    nothing = Filters(source_glob="nowhere/*")
    answer = answerer.ask(AskRequest(QUESTIONS[0], collection, filters=nothing))
    assert answer.abstained and answer.reason == "no passage in the collection matches the question"
    assert answer.passages == [] and "generation_ms" not in answer.timings


def test_the_verdicts_reason_to_abstain_is_given_and_switching_abstention_off_answers(counting) -> None:
    answerer, collection, _ = counting
    refused = answerer.ask(AskRequest(UNANSWERABLE, collection))
    assert refused.abstained and refused.reason == "no passage mentions 'Recife'" and refused.text == ""
    assert "generation_ms" not in refused.timings
    off = abstaining(answerer, AbstentionConfig(enabled=False))
    answered = off.ask(AskRequest(UNANSWERABLE, collection))
    assert not answered.abstained and answered.reason is None and answered.text
    assert answered.verdict.reason(off.abstention.min_support) == refused.reason  # the verdict is the same


def test_the_evidence_floor_decides_at_the_answers_own_evidence(counting) -> None:
    answerer, collection, _ = counting
    answer = answerer.ask(AskRequest(QUESTIONS[0], collection))
    assert not answer.abstained and 0 < answer.evidence < 1
    above = abstaining(answerer, AbstentionConfig(min_support=answer.evidence + 0.01))
    refused = above.ask(AskRequest(QUESTIONS[0], collection))
    assert refused.abstained and refused.reason.startswith("the closest passages do not answer the question")
    below = abstaining(answerer, AbstentionConfig(min_support=answer.evidence - 0.01))
    assert not below.ask(AskRequest(QUESTIONS[0], collection)).abstained
