"""Whether the passages answer a question, and if not, why: the one judgement behind abstaining, the
abstention reason and the citation check, so an answer and its verdict never disagree.

Reasons to abstain, in the order they are given (each measured on SQuAD 2.0, docs/quality.md):
- an entity of the question (a name, acronym or number) is in no passage, matched through
  `morphology.word_roots`;
- the question is negated and the closest sentence is not ("Who did not …?"), or it asks for one of a pair of
  opposites and the closest sentence says the other ("the last" / "the first");
- a number of the question is missing from the closest sentence;
- the question asks for a kind of value (an amount of money, a number, a date, a name, a place) and no sentence
  about its subject holds one (`mentions.carries`; `evidence.about`);
- the closest sentence's evidence (meaning and wording) is below the calibrated floor; the reason then names
  the question's words that no passage mentions, if any (never a function word or an inflected verb);
- with a re-ranker on and its floor set (`min_rerank`, calibrated for one model), it scores the best passage
  below that floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from service.evidence import EvidenceWeights, ScoredSentence, unmatched
from service.generators.base import Passage
from service.mentions import antonym_swap, negated
from service.questions import AnswerType, QuestionAnalysis

_KIND_WORDS = {
    AnswerType.NUMBER: "a number",
    AnswerType.AMOUNT: "an amount of money",
    AnswerType.DATE: "a date",
    AnswerType.PERSON: "a name",
    AnswerType.PLACE: "a place",
}
# A sentence counts as being about the subject from this `about` score up (the subject is at least mentioned).
ABOUT_FLOOR = 0.5


@dataclass(frozen=True)
class Verdict:
    """What the answerer concluded about a question over its passages."""

    evidence: float  # the closest sentence's meaning-and-wording score (0..1)
    missing: tuple[str, ...] = ()  # entities of the question that no passage mentions
    unmentioned: tuple[str, ...] = ()  # other carrying words that no passage mentions (named when evidence is low)
    contradiction: str | None = None  # the closest sentence says otherwise: negation or an opposite
    absent: AnswerType | None = None  # the asked kind of value, in no sentence about the subject
    subject: tuple[str, ...] = ()  # the question's entities, as written
    rerank: float | None = None  # the re-ranker's score of the best passage (None: no re-ranker, or it failed)

    def reason(self, min_support: float, min_rerank: float | None = None) -> str | None:
        """Why to abstain at this evidence floor (and re-rank floor, if set), or None to answer."""
        if self.missing:
            return f"no passage mentions {_quoted(self.missing)}"
        if self.contradiction:
            return self.contradiction
        if self.absent is not None:
            about = f" about {_quoted(self.subject)}" if self.subject else ""
            return f"no passage{about} gives {_KIND_WORDS[self.absent]}"
        if self.evidence < min_support:
            if self.unmentioned:
                return f"no passage mentions {_quoted(self.unmentioned)}"
            return f"the closest passages do not answer the question (evidence {self.evidence:.2f} < {min_support:.2f})"
        if min_rerank is not None and self.rerank is not None and self.rerank < min_rerank:
            return f"the re-ranker finds no passage that answers the question (score {self.rerank:.3f} < {min_rerank:.3f})"
        return None


def _quoted(words: Sequence[str]) -> str:
    return ", ".join(repr(w) for w in words[:5])


def passage_context(passage: Passage) -> str:
    """A passage's text with its title and headings: everything a word of the question may be matched in."""
    return " ".join((passage.text, passage.title, *passage.heading_path, *passage.headings))


def judge(
    question: QuestionAnalysis, ranked: Sequence[ScoredSentence], passages: Sequence[Passage], weights: EvidenceWeights,
) -> Verdict:
    """The verdict on `ranked` (the question's candidate sentences, best first) over `passages`."""
    best = ranked[0] if ranked else None
    evidence = weights.mix(best.cosine, best.overlap) if best else 0.0
    absent_words = unmatched(question.carrying, [passage_context(p) for p in passages])
    subject = tuple(t.text for t in question.entities)
    return Verdict(
        evidence,
        missing=tuple(t.text for t in absent_words if t.entity),
        unmentioned=tuple(t.text for t in absent_words if not t.entity),
        contradiction=_contradiction(question, best) if best else None,
        absent=_absent_kind(question, ranked),
        subject=subject,
    )


def _contradiction(question: QuestionAnalysis, best: ScoredSentence) -> str | None:
    if negated(question.text) and not negated(best.text):
        return "the question is negated and the closest passage is not"
    swap = antonym_swap(question.text, best.text)
    if swap:
        return f"the question asks about {swap[0]!r}; the closest passage says {swap[1]!r}"
    numbers = [t for t in question.entities if any(c.isdigit() for c in t.text)]
    lacking = unmatched(numbers, [best.text, *best.context])
    if lacking:
        return f"the closest passage does not mention {_quoted([t.text for t in lacking])}"
    return None


def _absent_kind(question: QuestionAnalysis, ranked: Sequence[ScoredSentence]) -> AnswerType | None:
    if question.answer_type not in _KIND_WORDS:
        return None
    if any(s.carries and s.about >= ABOUT_FLOOR for s in ranked):
        return None
    return question.answer_type
