"""The offline default: answer with the retrieved sentences that best answer the question, verbatim, cited."""

from __future__ import annotations

from typing import Iterator, Sequence

from pydantic import BaseModel, Field

from indexes.embedders import Embedder
from service.evidence import EvidenceScorer, ScoredSentence, passage_sentences
from service.generators.base import NOT_IN_DOCUMENTS, GeneratorPlugin, Passage
from service.questions import AnswerType, analyse_question


class ExtractiveSettings(BaseModel):
    """`DOCQA_GENERATOR__EXTRACTIVE__*`: how many sentences an answer takes, and how close to the best a
    runner-up's score must be (a share of it)."""

    max_sentences: int = Field(2, gt=0)
    keep_within: float = Field(0.7, ge=0, le=1)


class ExtractiveGenerator:
    """Picks the best sentence, plus close runners-up, and returns them with [n] citations. Exact by construction.

    Built with a request's scorer (`Answerer.scorer`), it picks from the ranking the answerer judged the question on.
    """

    name = "extractive"

    def __init__(
        self, embedder: Embedder | None = None, *, scorer: EvidenceScorer | None = None,
        max_sentences: int = 2, keep_within: float = 0.7,
    ) -> None:
        if scorer is None and embedder is None:
            raise ValueError("ExtractiveGenerator needs an embedder or a scorer")
        if max_sentences <= 0:
            raise ValueError(f"max_sentences must be > 0, got {max_sentences}")
        if not 0.0 <= keep_within <= 1.0:
            raise ValueError(f"keep_within must be in [0, 1], got {keep_within}")
        self.scorer = scorer or EvidenceScorer(embedder)  # type: ignore[arg-type]
        self.max_sentences = max_sentences
        self.keep_within = keep_within

    def pick(self, question: str, passages: Sequence[Passage]) -> list[ScoredSentence]:
        """The sentences the answer is made of: the best first, then up to `max_sentences - 1` close runners-up
        (one more for an enumeration, each of which must enumerate or name); adjacent ones in reading order."""
        sentences = passage_sentences(passages)
        ranked = self.scorer.rank(question, sentences)
        if not ranked:
            return []
        floor = ranked[0].score - abs(ranked[0].score) * (1 - self.keep_within)  # the best always qualifies
        if analyse_question(question).answer_type is AnswerType.LIST:
            chosen = [ranked[0]] + [s for s in ranked[1:] if s.carries and s.score >= floor][: self.max_sentences]
        else:
            chosen = [s for s in ranked[: self.max_sentences] if s.score >= floor]
        candidates = [s for s in sentences if not s.heading]
        order = {(s.n, s.text): i for i, s in reversed(list(enumerate(candidates)))}
        return _in_order(chosen, order)

    def generate(self, question: str, passages: Sequence[Passage]) -> Iterator[str]:
        """Yield the chosen sentences, each followed by its citation."""
        chosen = self.pick(question, passages)
        if not chosen:
            yield NOT_IN_DOCUMENTS
            return
        for i, sentence in enumerate(chosen):
            yield ("" if i == 0 else " ") + f"{' '.join(sentence.text.split())} [{sentence.n}]"


PLUGIN = GeneratorPlugin(
    ExtractiveSettings,
    lambda cfg, scorer: ExtractiveGenerator(scorer=scorer, max_sentences=cfg.max_sentences,
                                            keep_within=cfg.keep_within),
    needs_scorer=True,
)


def _in_order(chosen: list[ScoredSentence], order: dict[tuple[int, str], int]) -> list[ScoredSentence]:
    """Neighbours of one section in reading order; otherwise what is about the question's subject first (its
    entity opens the sentence or heads its section, `evidence.about`), then by score: for "Quantos parâmetros
    tem o Vega?" the Vega section's sentence leads, not Orion's that mentions Vega."""
    positions = [order[(s.n, s.text)] for s in chosen]
    one_section = len({(s.n, s.context) for s in chosen}) == 1
    if one_section and max(positions) - min(positions) == len(chosen) - 1:
        return sorted(chosen, key=lambda s: order[(s.n, s.text)])
    return sorted(chosen, key=lambda s: -s.about)  # stable: ties keep the score order
