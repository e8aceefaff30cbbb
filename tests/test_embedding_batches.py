"""The embedder's forward passes: texts grouped by the model's own token count, longest first, `batch_size` at a
time, so a pass pads little; the vectors come back in the caller's order (real model throughout)."""

from __future__ import annotations

import numpy as np
import pytest

from indexes.embedders import SentenceTransformerEmbedder
from indexes.sentences import sentence_spans

WORDS = ("river", "harbour", "lighthouse", "cartography", "a", "of", "navigation", "tide", "the", "compass")


def texts() -> list[str]:
    """Eleven passages of 1 to 24 sentences (all within the window), in no order of length; characters and tokens disagree on purpose
    (long words against many short ones)."""
    sizes = [3, 24, 1, 11, 6, 19, 2, 9, 21, 4, 14]
    out = []
    for i, n in enumerate(sizes):
        sentence = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(4 + i % 3)).capitalize() + "."
        out.append(" ".join([sentence] * n))
    return out


@pytest.fixture(scope="module")
def small_batches() -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder(batch_size=4)
    embedder.embed_documents(["warm up"])
    return embedder


@pytest.fixture
def passes(small_batches, monkeypatch) -> list[list[str]]:
    """The texts of every forward-pass call the embedder makes."""
    model = small_batches._load()
    real = model.encode
    calls: list[list[str]] = []

    def spy(inputs, *args, **kwargs):
        calls.append(list(inputs))
        return real(inputs, *args, **kwargs)

    monkeypatch.setattr(model, "encode", spy)
    return calls


def check_passes(embedder: SentenceTransformerEmbedder, calls: list[list[str]], count: int) -> None:
    lengths = [embedder.count_tokens(call) for call in calls]
    assert all(len(call) <= embedder.batch_size for call in calls)
    assert sum(len(call) for call in calls) == count
    flat = [n for call in lengths for n in call]
    assert flat == sorted(flat, reverse=True)  # one order by tokens across every pass, longest first


def test_passages_are_embedded_in_token_ordered_batches_and_returned_in_order(small_batches, passes) -> None:
    given = texts()
    vectors = small_batches.embed_documents(given)
    check_passes(small_batches, passes, len(given))
    alone = np.vstack([small_batches.embed_documents([t]) for t in given])
    assert vectors.shape == (len(given), 384)
    assert np.min(np.sum(vectors * alone, axis=1)) > 0.9999  # each row is its own text's vector


def test_sentence_vectors_follow_their_passages_through_the_reordering(small_batches, passes) -> None:
    given = texts()
    spans = [sentence_spans(t) for t in given]
    vectors, per_text = small_batches.embed_documents_with_spans(given, spans)
    check_passes(small_batches, passes, len(given))
    passes.clear()
    assert [m.shape[0] for m in per_text] == [len(s) for s in spans]
    for i in (0, 1, 2, 8):  # a passage's sentences pooled from its own pass, whatever pass it landed in
        _, (own,) = small_batches.embed_documents_with_spans([given[i]], [spans[i]])
        assert np.min(np.sum(per_text[i] * own, axis=1)) > 0.9999
    assert np.min(np.sum(vectors * small_batches.embed_documents(given), axis=1)) > 0.9999


def test_a_single_query_is_one_pass(small_batches, passes) -> None:
    vector = small_batches.embed_query("Where is the lighthouse?")
    assert len(passes) == 1 and vector.shape == (384,)
