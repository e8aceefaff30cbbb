"""Scoring sentences as evidence: for a question (extractive answers, abstention) or for a claim (citation checks).

A score mixes meaning (cosine of the embedder's vectors) and wording (the share of the question's content
words found in the sentence, matched through English and Portuguese stems).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from indexes.embedders import Embedder
from indexes.lexical import query_terms, word_stems
from ingest.chunking import sentence_spans
from service.generators.base import Passage

_CACHE_SIZE = 20_000
_stems = lru_cache(maxsize=65536)(word_stems)


def term_stems(text: str) -> list[frozenset[str]]:
    """The stems of each content word of a text (folded case and accents)."""
    return [_stems(w) for w in query_terms(text)]


def lexical_overlap(query: str, text: str) -> float:
    """Share of the query's content words that appear in the text (by any stem); 0 when the query has none."""
    wanted = term_stems(query)
    if not wanted:
        return 0.0
    present: set[str] = set().union(*term_stems(text)) if text else set()
    return sum(1 for stems in wanted if stems & present) / len(wanted)


def passage_sentences(passages: Sequence[Passage]) -> list[tuple[int, str]]:
    """(passage number, sentence) for every sentence of every passage, in order."""
    return [(p.n, s) for p in passages for s in split_sentences(p.text)]


def split_sentences(text: str) -> list[str]:
    """The sentences of a text, stripped, without empties."""
    return [text[a:b].strip() for a, b in sentence_spans(text) if text[a:b].strip()]


@dataclass(frozen=True)
class ScoredSentence:
    """One sentence of one passage, scored against a question or claim."""

    n: int
    text: str
    score: float
    cosine: float
    overlap: float


class EvidenceScorer:
    """Scores sentences with an embedder and word overlap; weight `alpha` goes to meaning."""

    def __init__(self, embedder: Embedder, alpha: float = 0.6) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.embedder = embedder
        self.alpha = alpha
        # The answerer (to decide on abstaining) and the extractive generator rank the same sentences,
        # and citation checks embed them again: remember both.
        self._last: tuple[tuple[str, tuple[tuple[int, str], ...]], list[ScoredSentence]] | None = None
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Document vectors for sentences, from a bounded cache where possible."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        fresh = self.embedder.embed_documents(missing) if missing else None
        with self._lock:
            for text, vector in zip(missing, fresh if fresh is not None else []):
                self._vectors[text] = vector
            out = np.vstack([self._vectors[t] for t in texts])
            for text in texts:
                self._vectors.move_to_end(text)
            while len(self._vectors) > _CACHE_SIZE:
                self._vectors.popitem(last=False)
        return out

    def rank(self, query: str, sentences: Sequence[tuple[int, str]]) -> list[ScoredSentence]:
        """Score (passage number, sentence) pairs against `query`, best first."""
        key = (query, tuple(sentences))
        last = self._last
        if last is not None and last[0] == key:
            return last[1]
        ranked = self._rank(query, sentences)
        self._last = (key, ranked)
        return ranked

    def _rank(self, query: str, sentences: Sequence[tuple[int, str]]) -> list[ScoredSentence]:
        if not sentences:
            return []
        q = self.embedder.embed_query(query)
        vectors = self.embed([s for _, s in sentences])
        cosines = vectors @ q
        overlaps = [lexical_overlap(query, text) for _, text in sentences]
        scored = [
            ScoredSentence(n, text, self._mix(float(c), o), float(c), o)
            for (n, text), c, o in zip(sentences, cosines, overlaps)
        ]
        return sorted(scored, key=lambda s: -s.score)

    def _mix(self, cosine: float, overlap: float) -> float:
        return self.alpha * max(cosine, 0.0) + (1 - self.alpha) * overlap

    def support(self, claim: str, passages: Sequence[str]) -> float:
        """How well the best sentence of the given passages supports a claim (0..1)."""
        sentences = [(0, s) for p in passages for s in split_sentences(p)]
        if not sentences:
            return 0.0
        claim_vector = self.embed([claim])[0]
        vectors = self.embed([s for _, s in sentences])
        cosines = np.asarray(vectors @ claim_vector)
        joined = " ".join(passages)
        overlap = lexical_overlap(claim, joined)
        return self._mix(float(cosines.max()), overlap)
