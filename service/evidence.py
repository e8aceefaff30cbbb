"""Scoring sentences as evidence: for a question (extractive answers, abstention) or for a claim (citation checks).

A score mixes meaning (cosine of the embedder's vectors) and wording (the IDF-weighted share of the question's
carrying words found in the sentence or the headings above it, matched through `morphology.word_roots`), plus
what the question asks for (`EvidenceWeights`). Heading lines are context for the sentences under them, never
candidates.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from indexes.embedders import Embedder
from indexes.lexical import STOP_WORDS, fold
from indexes.sentences import sentence_spans, split_sentences
from service.generators.base import Passage
from service.mentions import carries
from service.morphology import roots_of
from service.questions import WORD, QuestionAnalysis, Term, analyse_question

_CACHE_SIZE = 20_000
_SECTION_NUMBER = re.compile(r"^\s*(?:\d+(?:\.\d+)*\.?|[IVXLC]+\.)\s+")
_TERMINAL = ".!?:;…,"
_HEADING_MAX_WORDS = 10
_OPENING_WORDS = 4  # an entity among a sentence's first content words is what the sentence is about


def text_roots(text: str) -> set[str]:
    """Every root of every word of a text, function words included (they never match a content word)."""
    return roots_of([fold(w) for w in WORD.findall(text)])


def unmatched(terms: Sequence[Term], texts: Sequence[str]) -> list[Term]:
    """The terms that none of the texts mentions (by any root)."""
    present: set[str] = set()
    for text in texts:
        present |= text_roots(text)
    return [t for t in terms if not t.roots & present]


def lexical_overlap(query: str, text: str) -> float:
    """Share of the query's words (`questions.analyse_question`'s terms) that appear in the text (by any root);
    0 when the query has none."""
    terms = analyse_question(query).terms
    if not terms:
        return 0.0
    return 1 - len(unmatched(terms, [text])) / len(terms)


@dataclass(frozen=True)
class Sentence:
    """One sentence of one passage, with the headings it sits under; a heading line is context, not an answer."""

    n: int
    text: str
    context: tuple[str, ...] = ()
    heading: bool = False
    rank: float = 1.0  # its passage's retrieval score over the best passage's (0..1)


def passage_sentences(passages: Sequence[Passage]) -> list[Sentence]:
    """Every sentence of every passage, in order, each with its headings (the passage's, then any heading line
    met in its text)."""
    out: list[Sentence] = []
    best = max((p.score for p in passages), default=0.0)
    for p in passages:
        rank = p.score / best if best > 0 else 1.0
        known = {_norm(h) for h in (*p.heading_path, *p.headings, p.title) if h}
        context = tuple(p.heading_path)
        for a, b in sentence_spans(p.text):
            text = p.text[a:b].strip()
            if not text:
                continue
            if is_heading(text, p.text, a, b, known):
                context = (*p.heading_path[:-1], text)
                out.append(Sentence(p.n, text, context, heading=True, rank=rank))
            else:
                out.append(Sentence(p.n, text, context, rank=rank))
    return out


def is_heading(text: str, passage: str, start: int, end: int, known: set[str]) -> bool:
    """A known heading or title, or a line shaped like one: alone on its line, short, no closing punctuation,
    no figures (a table row or an item with a number is content), not a list item."""
    if _norm(text) in known:
        return True
    line_end = passage.find("\n", end)
    before = passage[passage.rfind("\n", 0, start) + 1 : start]
    after = passage[end : len(passage) if line_end < 0 else line_end]
    alone = not before.strip(" \t") and not after.strip(" \t")
    if not alone or text[-1] in _TERMINAL or "|" in text or text[0] in "-*•–":
        return False
    body = _SECTION_NUMBER.sub("", text)
    words = WORD.findall(body)
    return 0 < len(words) <= _HEADING_MAX_WORDS and not any(c.isdigit() for c in body)


def _norm(text: str) -> str:
    return " ".join(WORD.findall(fold(text)))


@dataclass(frozen=True)
class ScoredSentence:
    """One sentence of one passage, scored against a question or claim."""

    n: int
    text: str
    score: float
    cosine: float
    overlap: float
    carries: bool = True  # holds a value of the kind the question asks for
    about: float = 0.0  # how much it is about the question's subject (0..1)
    context: tuple[str, ...] = ()  # the headings it sits under


@dataclass(frozen=True)
class EvidenceWeights:
    """How a sentence's score is made (measured on SQuAD and FaQuAD, docs/quality.md): meaning and wording
    (`alpha` of the cosine, the rest the IDF-weighted share of the question's words it holds, headings above
    it included), plus `carries` when it holds a value of the asked kind, `about` for being about the
    question's subject, `passage` times its passage's retrieval rank, and `follow` of the lead of the
    sentence before it in the same passage (an answer often follows the sentence that restates the question:
    "... is often seen as P. This hypothesis is called the Cobham–Edmonds thesis.")."""

    alpha: float = 0.6
    carries: float = 0.1
    about: float = 0.0
    passage: float = 0.5
    follow: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")

    def mix(self, cosine: float, overlap: float) -> float:
        """Meaning and wording alone (0..1)."""
        return self.alpha * max(cosine, 0.0) + (1 - self.alpha) * overlap


def about(sentence: Sentence, question: QuestionAnalysis) -> float:
    """How much a sentence is about the question's entities: each counts 1 where it opens the sentence or
    heads its section, 0.5 where it is only mentioned further on, 0 where absent; 1 when there are none."""
    entities = question.entities
    if not entities:
        return 1.0
    words = [fold(w) for w in WORD.findall(sentence.text)]
    opening = roots_of([w for w in words if w not in STOP_WORDS][:_OPENING_WORDS])
    opening |= roots_of([fold(w) for h in sentence.context for w in WORD.findall(h)])
    everywhere = roots_of(words)
    total = 0.0
    for term in entities:
        total += 1.0 if term.roots & opening else 0.5 if term.roots & everywhere else 0.0
    return total / len(entities)


def score_sentences(
    question: QuestionAnalysis, sentences: Sequence[Sentence], cosines: Sequence[float], weights: EvidenceWeights,
) -> list[ScoredSentence]:
    """Score sentences for a question from their cosines, best first."""
    wanted = [t.roots for t in question.terms]
    presents = [text_roots(" ".join((s.text, *s.context))) for s in sentences]
    # a word found in every candidate tells them apart less than one found in a few (IDF over the candidates)
    idf = [math.log(1 + len(sentences) / (1 + sum(1 for present in presents if roots & present))) for roots in wanted]
    total = sum(idf)
    scored = []
    for sentence, cosine, present in zip(sentences, cosines, presents):
        overlap = sum(w for roots, w in zip(wanted, idf) if roots & present) / total if total else 0.0
        has = carries(sentence.text, question)
        on = about(sentence, question)
        score = weights.mix(cosine, overlap) + weights.carries * has + weights.about * on + weights.passage * sentence.rank
        scored.append(ScoredSentence(sentence.n, sentence.text, score, cosine, overlap, has, on, sentence.context))
    own = [s.score for s in scored]
    for i in range(1, len(scored)):
        lead = own[i - 1] - own[i]
        same_section = (sentences[i].n, sentences[i].context) == (sentences[i - 1].n, sentences[i - 1].context)
        if lead > 0 and same_section:
            scored[i] = replace(scored[i], score=own[i] + weights.follow * lead)
    return sorted(scored, key=lambda s: -s.score)


class SentenceVectors:
    """Document vectors of sentences from one embedder, through a bounded cache; thread-safe, so one serves every
    request of a collection (citation checks embed the sentences that ranking embedded)."""

    def __init__(self, embedder: Embedder, size: int = _CACHE_SIZE) -> None:
        self.embedder = embedder
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One vector per text, from the cache where possible."""
        with self._lock:
            found = {t: self._vectors[t] for t in texts if t in self._vectors}  # held here: another thread may evict
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            found.update(zip(missing, self.embedder.embed_documents(missing)))
        with self._lock:
            for text in texts:
                self._vectors[text] = found[text]
                self._vectors.move_to_end(text)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return np.vstack([found[t] for t in texts])


class EvidenceScorer:
    """Scores sentences with an embedder, word overlap and what the question asks for (`EvidenceWeights`).

    One scorer serves one request: it remembers its last ranking, because the answerer (to decide on abstaining)
    and the extractive generator rank the same sentences. Scorers of one collection share its `SentenceVectors`.
    """

    def __init__(
        self, embedder: Embedder, weights: EvidenceWeights | None = None, vectors: SentenceVectors | None = None,
    ) -> None:
        self.embedder = embedder
        self.weights = weights or EvidenceWeights()
        self.vectors = vectors or SentenceVectors(embedder)
        self._last: tuple[tuple[str, tuple[Sentence, ...]], list[ScoredSentence]] | None = None

    def rank(self, query: str, sentences: Sequence[Sentence]) -> list[ScoredSentence]:
        """Score a question's candidate sentences, best first; heading lines are left out (context, not answers)."""
        key = (query, tuple(sentences))
        last = self._last
        if last is not None and last[0] == key:
            return last[1]
        ranked = self._rank(query, [s for s in sentences if not s.heading])
        self._last = (key, ranked)
        return ranked

    def _rank(self, query: str, sentences: Sequence[Sentence]) -> list[ScoredSentence]:
        if not sentences:
            return []
        q = self.embedder.embed_query(query)
        cosines = self.vectors.embed([s.text for s in sentences]) @ q
        return score_sentences(analyse_question(query), sentences, [float(c) for c in cosines], self.weights)

    def support(self, claim: str, passages: Sequence[str]) -> float:
        """How well the best sentence of the given passages supports a claim (0..1)."""
        sentences = [(0, s) for p in passages for s in split_sentences(p)]
        if not sentences:
            return 0.0
        claim_vector = self.vectors.embed([claim])[0]
        vectors = self.vectors.embed([s for _, s in sentences])
        cosines = np.asarray(vectors @ claim_vector)
        joined = " ".join(passages)
        overlap = lexical_overlap(claim, joined)
        return self.weights.mix(float(cosines.max()), overlap)
