"""The retrieval pipeline's own logic over a real store and model, with scripted re-rankers: which fused hits are
re-scored, how the cut to k and ties go, what a failing re-ranker leaves, and the re-rank floor of abstention."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import pytest

from indexes.errors import InvalidInput
from indexes.search import Searcher
from ingest.pipeline import IngestPipeline, SourceFile
from service.answer import Answerer, AskRequest
from service.errors import RerankerUnavailable
from service.generators.registry import GeneratorRegistry
from service.retrieval import RERANK, RetrievalPipeline
from rerankers import NOTES
from service.settings import AbstentionConfig, GeneratorConfig, RetrievalConfig

QUERY = "How many nodes does the staging cluster have?"


class Scripted:
    """A re-ranker that scores each text by `score(text)` and keeps what it was asked."""

    name = "scripted"

    def __init__(self, score=lambda text: float(len(text))) -> None:  # noqa: ANN001
        self.score = score
        self.calls: list[list[str]] = []

    def rerank(self, query: str, texts: Sequence[str]) -> list[float]:
        self.calls.append(list(texts))
        return [self.score(t) for t in texts]


class Failing:
    name = "failing"

    def __init__(self, failure) -> None:  # noqa: ANN001
        self.failure = failure

    def rerank(self, query: str, texts: Sequence[str]) -> list[float]:
        if isinstance(self.failure, BaseException):
            raise self.failure
        return self.failure(texts)


@pytest.fixture
def notes(store, collection, tmp_path: Path):  # noqa: ANN001, ANN201
    files = []
    for name, text in NOTES.items():
        path = tmp_path / "notes" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"# {name[:-3].title()}\n\n{text}\n")
        files.append(SourceFile(path, name))
    assert not IngestPipeline(store, collection, workers=0).ingest(files).failures
    return store, collection


def fused(store, collection, k: int) -> list[str]:  # noqa: ANN001
    """The first stage's order: the Searcher alone."""
    return [h.source for h in Searcher(store, RetrievalConfig().tuning()).search(collection, QUERY, k=k)]


def test_without_a_reranker_the_pipeline_gives_the_searchers_hits(notes) -> None:  # noqa: ANN001
    store, collection = notes
    result = RetrievalPipeline(store, RetrievalConfig()).search(collection, QUERY, k=4)
    assert [h.source for h in result.hits] == fused(store, collection, 4)
    assert all(RERANK not in h.scores for h in result.hits)
    assert result.warnings == [] and "rerank_ms" not in result.timings and result.timings["retrieval_ms"] > 0


def test_the_top_candidates_are_rescored_reordered_and_cut_to_k(notes) -> None:  # noqa: ANN001
    store, collection = notes
    reranker = Scripted()
    result = RetrievalPipeline(store, RetrievalConfig(), reranker, candidates=5).search(collection, QUERY, k=2)
    first_five = fused(store, collection, 5)
    assert [NOTES[s] for s in first_five] == [t for t in reranker.calls[0]]  # exactly the top 5, in fused order
    longest = sorted(first_five, key=lambda s: -len(NOTES[s]))[:2]
    assert [h.source for h in result.hits] == longest
    assert [h.scores[RERANK] for h in result.hits] == [float(len(NOTES[s])) for s in longest]
    assert {"dense", "lexical"} <= set(result.hits[0].scores)  # the retrievers' scores stay beside it
    assert result.timings["rerank_ms"] > 0


def test_past_the_candidates_the_fused_order_goes_on_unscored(notes) -> None:  # noqa: ANN001
    store, collection = notes
    order = fused(store, collection, 6)
    later_is_better = Scripted(lambda t: float([NOTES[s] for s in order].index(t)))
    result = RetrievalPipeline(store, RetrievalConfig(), later_is_better, candidates=3).search(collection, QUERY, k=6)
    assert [h.source for h in result.hits] == [order[2], order[1], order[0], *order[3:]]
    assert all(RERANK not in h.scores for h in result.hits[3:])


def test_ties_keep_the_fused_order(notes) -> None:  # noqa: ANN001
    store, collection = notes
    result = RetrievalPipeline(store, RetrievalConfig(), Scripted(lambda t: 0.5), candidates=6).search(collection, QUERY, k=6)
    assert [h.source for h in result.hits] == fused(store, collection, 6)
    assert all(h.scores[RERANK] == 0.5 for h in result.hits)


@pytest.mark.parametrize("failure, words", [
    (RerankerUnavailable("re-ranking server at http://r:8080: HTTP 503"), "HTTP 503"),
    (RuntimeError("CUDA out of memory"), "RuntimeError: CUDA out of memory"),
    (lambda texts: [1.0] * (len(texts) - 1), "scores for"),
    (lambda texts: [math.nan] * len(texts), "not a finite number"),
    (lambda texts: ["high"] * len(texts), "not a finite number"),
])
def test_a_failing_reranker_leaves_the_fused_order_with_a_warning(notes, failure, words: str, caplog) -> None:  # noqa: ANN001
    store, collection = notes
    result = RetrievalPipeline(store, RetrievalConfig(), Failing(failure), candidates=5).search(collection, QUERY, k=3)
    assert [h.source for h in result.hits] == fused(store, collection, 3)
    assert all(RERANK not in h.scores for h in result.hits)
    [warning] = result.warnings
    assert warning.startswith("re-ranking failed, passages are in fused order") and words in warning
    assert "rerank_ms" in result.timings
    assert any(r.message == "re-ranker failed; fused order kept" for r in caplog.records)


def test_k_must_be_positive(notes) -> None:  # noqa: ANN001
    store, collection = notes
    with pytest.raises(InvalidInput, match="k must be > 0"):
        RetrievalPipeline(store, RetrievalConfig(), Scripted()).search(collection, QUERY, k=0)


def answerer(store, reranker, min_rerank: float | None) -> Answerer:  # noqa: ANN001
    pipeline = RetrievalPipeline(store, RetrievalConfig(), reranker, candidates=5)
    return Answerer(store, GeneratorRegistry(GeneratorConfig()), RetrievalConfig(),
                    AbstentionConfig(min_rerank=min_rerank), pipeline=pipeline)


def test_the_rerank_floor_abstains_when_the_best_passage_scores_below_it(notes) -> None:  # noqa: ANN001
    store, collection = notes
    low = Scripted(lambda t: 0.2 if "staging" in t else 0.1)
    answered = answerer(store, low, None).ask(AskRequest(QUERY, collection))
    assert not answered.abstained and "12" in answered.text
    assert answered.verdict.rerank == 0.2 and answered.passages[0].rerank == 0.2
    refused = answerer(store, low, 0.5).ask(AskRequest(QUERY, collection))
    assert refused.abstained and refused.reason == (
        "the re-ranker finds no passage that answers the question (score 0.200 < 0.500)")
    assert not answerer(store, low, 0.15).ask(AskRequest(QUERY, collection)).abstained


def test_a_failed_reranker_is_no_evidence_against_an_answer(notes) -> None:  # noqa: ANN001
    store, collection = notes
    answer = answerer(store, Failing(RerankerUnavailable("down")), 0.5).ask(AskRequest(QUERY, collection))
    assert not answer.abstained and answer.verdict.rerank is None
    assert answer.warnings == ["re-ranking failed, passages are in fused order: down"]
