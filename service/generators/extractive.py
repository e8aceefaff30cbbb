"""The offline default: answer with the retrieved sentences that best answer the question, verbatim, cited."""

from __future__ import annotations

from typing import Iterator, Sequence

from indexes.embedders import Embedder
from service.evidence import EvidenceScorer, ScoredSentence, passage_sentences
from service.generators.base import NOT_IN_DOCUMENTS, Passage


class ExtractiveGenerator:
    """Picks the best sentence, plus close runners-up, and returns them with [n] citations. Exact by construction."""

    name = "extractive"

    def __init__(
        self, embedder: Embedder | None = None, *, scorer: EvidenceScorer | None = None,
        max_sentences: int = 2, keep_within: float = 0.9,
    ) -> None:
        if scorer is None and embedder is None:
            raise ValueError("ExtractiveGenerator needs an embedder or a scorer")
        if max_sentences <= 0:
            raise ValueError(f"max_sentences must be > 0, got {max_sentences}")
        self.scorer = scorer or EvidenceScorer(embedder)  # type: ignore[arg-type]
        self.max_sentences = max_sentences
        self.keep_within = keep_within

    def pick(self, question: str, passages: Sequence[Passage]) -> list[ScoredSentence]:
        """The sentences the answer is made of, in reading order."""
        sentences = passage_sentences(passages)
        ranked = self.scorer.rank(question, sentences)
        if not ranked:
            return []
        best = ranked[0].score
        chosen = [s for s in ranked[: self.max_sentences] if s.score >= best * self.keep_within]
        order = {pair: i for i, pair in enumerate(sentences)}
        return sorted(chosen, key=lambda s: order[(s.n, s.text)])

    def generate(self, question: str, passages: Sequence[Passage]) -> Iterator[str]:
        """Yield the chosen sentences, each followed by its citation."""
        chosen = self.pick(question, passages)
        if not chosen:
            yield NOT_IN_DOCUMENTS
            return
        for i, sentence in enumerate(chosen):
            yield ("" if i == 0 else " ") + f"{sentence.text} [{sentence.n}]"
