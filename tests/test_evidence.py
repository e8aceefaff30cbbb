"""The evidence scorer with the real model: ranking a question's sentences, a claim's support, the ranking a
request remembers and the sentence vectors its collection's requests share."""

from __future__ import annotations

import threading
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from service.answer import Answerer
from service.citations import SUPPORT_THRESHOLD
from service.evidence import EvidenceScorer, SentenceVectors, passage_sentences
from service.generators.base import Passage
from service.generators.registry import GeneratorRegistry
from service.settings import AbstentionConfig, GeneratorConfig, RetrievalConfig

OPS = Passage(1, "Staging\nThe cafeteria opens at eight. The staging cluster has 12 nodes. Backups run nightly.",
              "Ops handbook", "ops.md", heading_path=("Ops",))
BILLING = Passage(2, "Invoices are sent on the third business day of each month.", "Billing", "billing.md")
QUESTION = "How many nodes does the staging cluster have?"


class Counting:
    """An embedder that counts what it is asked to embed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.queries: Counter[str] = Counter()
        self.documents: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            self.queries[text] += 1
        return self.inner.embed_query(text)

    def embed_documents(self, texts) -> np.ndarray:
        with self._lock:
            self.documents.update(texts)
        return self.inner.embed_documents(texts)


class Hashed:
    """Fast deterministic unit vectors per text, for hammering the cache."""

    def embed_documents(self, texts) -> np.ndarray:
        rows = [np.random.default_rng(zlib.crc32(t.encode())).standard_normal(8) for t in texts]
        return np.array([r / np.linalg.norm(r) for r in rows], dtype=np.float32)


@pytest.fixture
def counting(embedder) -> Counting:
    return Counting(embedder)


def test_the_sentence_that_answers_ranks_first_and_heading_lines_are_never_candidates(counting) -> None:
    ranked = EvidenceScorer(counting).rank(QUESTION, passage_sentences([OPS, BILLING]))
    assert ranked[0].text == "The staging cluster has 12 nodes." and ranked[0].n == 1
    assert "Staging" not in [s.text for s in ranked] and len(ranked) == 4
    assert [s.score for s in ranked] == sorted((s.score for s in ranked), reverse=True)
    assert ranked[0].context == ("Staging",)  # the heading line is the context of the sentences under it


def test_a_scorer_remembers_its_last_ranking_and_no_other_scorer_sees_it(counting) -> None:
    sentences = passage_sentences([OPS, BILLING])
    scorer = EvidenceScorer(counting)
    first = scorer.rank(QUESTION, sentences)
    assert scorer.rank(QUESTION, sentences) is first and counting.queries[QUESTION] == 1
    other = "When are invoices sent?"
    assert scorer.rank(other, sentences)[0].n == 2 and counting.queries[other] == 1
    assert scorer.rank(QUESTION, sentences) == first and counting.queries[QUESTION] == 2  # one slot: ranked again
    another_request = EvidenceScorer(counting, vectors=scorer.vectors)
    assert another_request.rank(QUESTION, sentences) == first and counting.queries[QUESTION] == 3


def test_the_answerers_scorers_are_one_per_request_over_the_collections_shared_sentence_vectors(store, embedder) -> None:
    collection = store.ensure_collection("default", embedder)
    answerer = Answerer(store, GeneratorRegistry(GeneratorConfig()), RetrievalConfig(), AbstentionConfig())
    a, b = answerer.scorer(collection), answerer.scorer(collection)
    assert a is not b and a.vectors is b.vectors and a.vectors.embedder is store.embedder(collection)
    sentences = passage_sentences([OPS])
    assert a.rank(QUESTION, sentences) is not b.rank(QUESTION, sentences)


def test_support_is_high_for_a_claim_its_passage_states_and_low_for_one_it_does_not(counting) -> None:
    scorer = EvidenceScorer(counting)
    stated = scorer.support("The staging cluster has 12 nodes.", [OPS.text])
    unrelated = scorer.support("The staging cluster has 12 nodes.", [BILLING.text])
    assert stated >= 0.9 and unrelated < SUPPORT_THRESHOLD
    assert scorer.support("Anything at all.", ["", "  "]) == 0.0


def test_sentence_vectors_embed_each_text_once_and_keep_the_most_recently_used(counting, embedder) -> None:
    vectors = SentenceVectors(counting, size=2)
    a, b, c = "The staging cluster has 12 nodes.", "Backups run nightly.", "Invoices are sent monthly."
    assert np.allclose(vectors.embed([a, b, a]), embedder.embed_documents([a, b, a]), atol=1e-6)
    assert counting.documents == Counter({a: 1, b: 1})
    vectors.embed([a])  # a is now the most recent: c evicts b
    vectors.embed([c])
    vectors.embed([a, b])
    assert counting.documents == Counter({a: 1, b: 2, c: 1})


def test_sentence_vectors_stay_right_while_threads_evict_each_others_entries() -> None:
    embedder = Hashed()
    vectors = SentenceVectors(embedder, size=3)
    texts = [f"sentence {i}" for i in range(12)]

    def embed_many(seed: int) -> bool:
        rng = np.random.default_rng(seed)
        for _ in range(300):
            batch = [texts[i] for i in rng.choice(len(texts), 4)]
            if not np.array_equal(vectors.embed(batch), embedder.embed_documents(batch)):
                return False
        return True

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(embed_many, range(8)))
