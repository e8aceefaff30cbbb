"""retrieve → build context → generate → verify citations → Answer. Never imports fastapi."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from indexes.errors import InvalidInput, NotFound
from indexes.filters import Filters
from indexes.locators import merged, same_place
from indexes.search import Searcher
from indexes.store import Store
from indexes.types import Collection, Hit
from service.chat import rewrite_follow_up
from service.citations import VerifiedAnswer, verify
from service.errors import GeneratorUnavailable
from service.evidence import EvidenceScorer, SentenceVectors, passage_sentences
from service.generators.base import NOT_IN_DOCUMENTS, Passage
from service.generators.registry import GeneratorRegistry
from service.questions import analyse_question
from service.settings import AbstentionConfig, RetrievalConfig
from service.verdict import Verdict, judge


@dataclass
class Answer:
    """A finished answer: text with [n] markers, the passages it was given, and how it was checked."""

    question: str
    text: str
    passages: list[Passage]
    abstained: bool
    reason: str | None
    timings: dict[str, float]
    verified: VerifiedAnswer | None = None
    generator: str = "extractive"
    verdict: Verdict = field(default_factory=lambda: Verdict(0.0))

    @property
    def evidence(self) -> float:
        """The best sentence's evidence score (what the abstention floor is compared with)."""
        return self.verdict.evidence

    @property
    def cited(self) -> list[int]:
        """Numbers of the passages the final text cites, in order of first use."""
        if self.verified is None:
            return []
        return list(dict.fromkeys(n for c in self.verified.claims for n in c.cited))


@dataclass
class AnswerEvent:
    """One step of a streamed answer: `citations` (the passages), `token` (text), `done` (the Answer)."""

    kind: str
    data: Any = None


@dataclass
class AskRequest:
    """What the caller wants answered, already validated for shape."""

    question: str
    collection: Collection
    top_k: int | None = None
    filters: Filters = field(default_factory=Filters)
    generator: str | None = None
    mode: str | None = None


def merge_hits(hits: Sequence[Hit], document_text: Any, budget_chars: int) -> list[Passage]:
    """Merge adjacent or overlapping chunks of one document, best first, within a character budget."""
    groups: list[list[Hit]] = []
    for hit in hits:
        touching = [g for g in groups if g[0].document_id == hit.document_id and any(_touch(hit, h) for h in g)]
        if not touching:
            groups.append([hit])
            continue
        # a hit between two groups ("0, 2, then 1") joins them, where the better of them stood
        touching[0].append(hit)
        for other in touching[1:]:
            touching[0].extend(other)
        groups = [g for g in groups if not any(g is other for other in touching[1:])]
    passages: list[Passage] = []
    used = 0
    for group in groups:
        group.sort(key=lambda h: h.start)
        text = _group_text(group, document_text)
        if passages and used + len(text) > budget_chars:
            continue
        used += len(text)
        first = group[0]
        passages.append(
            Passage(
                n=len(passages) + 1, text=text, title=first.title, source=first.source, page=first.page_start,
                heading_path=first.heading_path, document_id=first.document_id,
                chunk_ids=tuple(h.chunk_id for h in group), score=max(h.score for h in group),
                headings=tuple(dict.fromkeys(t for h in group for t in h.heading_path)),
                locator=merged([h.locator for h in group]), ocr=any(h.ocr for h in group),
            )
        )
    return passages


def _touch(a: Hit, b: Hit) -> bool:
    """Neighbouring or overlapping chunks in the same place (a citation names one page, slide or sheet)."""
    same_page = (a.page_start, a.page_end) == (b.page_start, b.page_end) and same_place(a.locator, b.locator)
    return same_page and (abs(a.ordinal - b.ordinal) <= 1 or (a.start < b.end and b.start < a.end))


def _group_text(group: list[Hit], document_text: Any) -> str:
    """The document's text from the first chunk to the last, with the heading of each chunk that starts a new
    section as a line of its own (parsers keep headings out of the text, so a merged passage would lose them)."""
    if len(group) == 1:
        return group[0].text
    try:
        full = document_text(group[0].document_id)
    except NotFound:  # replaced since the search: its chunks' own texts still hold
        full = ""
    if not full:
        return "\n".join(h.text for h in group)
    parts, cursor, path = [], group[0].start, group[0].heading_path
    for hit in group:
        if hit.start >= cursor and hit.heading_path != path and hit.heading_path:
            gap, heading = full[cursor:hit.start], hit.heading_path[-1]
            line = re.compile(rf"^[ \t]*{re.escape(heading)}[ \t]*$", re.MULTILINE)
            present = line.search(full, cursor, min(len(full), hit.start + len(heading) + 2))  # a PDF keeps its headings
            parts.append(gap if present else gap.rstrip() + f"\n\n{heading}\n")
            cursor = hit.start
        path = hit.heading_path
        if hit.end > cursor:
            parts.append(full[cursor:hit.end])
            cursor = hit.end
    return "".join(parts)


class Answerer:
    """Answers questions over a Store with the configured retrieval, generators and abstention."""

    def __init__(
        self, store: Store, generators: GeneratorRegistry, retrieval: RetrievalConfig,
        abstention: AbstentionConfig, max_question_chars: int = 2000, max_top_k: int = 50,
    ) -> None:
        self.store = store
        self.searcher = Searcher(store, retrieval.tuning())
        self.generators = generators
        self.retrieval = retrieval
        self.abstention = abstention
        self.max_question_chars = max_question_chars
        self.max_top_k = max_top_k
        self._vectors: dict[int, SentenceVectors] = {}

    def scorer(self, collection: Collection) -> EvidenceScorer:
        """An evidence scorer for one request, with the collection's own embedder and its shared sentence vectors."""
        vectors = self._vectors.get(collection.id)
        if vectors is None:
            vectors = self._vectors.setdefault(collection.id, SentenceVectors(self.store.embedder(collection)))
        return EvidenceScorer(vectors.embedder, vectors=vectors)

    def validate(self, request: AskRequest) -> None:
        """Reject empty or oversized questions and out-of-range top_k."""
        if not request.question.strip():
            raise InvalidInput("question must not be empty")
        if len(request.question) > self.max_question_chars:
            raise InvalidInput(f"question is {len(request.question)} characters; the limit is {self.max_question_chars}")
        if request.top_k is not None and not 0 < request.top_k <= self.max_top_k:
            raise InvalidInput(f"top_k must be between 1 and {self.max_top_k}, got {request.top_k}")

    def check(self, request: AskRequest) -> None:
        """Everything that can be refused before an answer starts: input limits and the generator's name (filters
        were validated by their model when the request was read)."""
        self.validate(request)
        self.generators.get(request.generator, self.scorer(request.collection))

    def rewrite(self, question: str, previous: Sequence[str], generator: str | None = None) -> str:
        """A follow-up as a standalone question: by the LLM when the generator can, else by the deterministic rule."""
        if not previous:
            return question
        name = generator or self.generators.config.backend
        backend = None if self.generators.needs_scorer(name) else self.generators.get(name)
        rewrite_with_llm = getattr(backend, "rewrite_question", None)
        if rewrite_with_llm is not None:
            try:
                return rewrite_with_llm(question, list(previous)) or question
            except GeneratorUnavailable:
                pass  # fall back to the rule rather than fail the turn
        return rewrite_follow_up(question, previous)

    def retrieve(self, request: AskRequest) -> list[Hit]:
        """The hits for a question, as configured."""
        return self.searcher.search(
            request.collection, request.question, mode=request.mode or self.retrieval.mode,
            k=request.top_k or self.retrieval.top_k, filters=request.filters,
        )

    def stream(self, request: AskRequest) -> Iterator[AnswerEvent]:
        """citations, then tokens, then done. Closing the iterator stops the generator."""
        self.validate(request)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        hits = self.retrieve(request)
        passages = merge_hits(hits, self.store.document_text, self.retrieval.context_chars)
        timings["retrieval_ms"] = _ms(started)
        scorer = self.scorer(request.collection)
        generator = self.generators.get(request.generator, scorer)
        mark = time.perf_counter()
        ranked = scorer.rank(request.question, passage_sentences(passages))
        verdict = judge(analyse_question(request.question), ranked, passages, scorer.weights)
        timings["evidence_ms"] = _ms(mark)
        yield AnswerEvent("citations", passages)
        reason = self._abstain_reason(passages, verdict)
        if reason:
            timings["total_ms"] = _ms(started)
            yield AnswerEvent("done", Answer(request.question, "", passages, True, reason, timings, None, generator.name, verdict))
            return
        mark = time.perf_counter()
        pieces: list[str] = []
        tokens = generator.generate(request.question, passages)
        try:
            for piece in tokens:
                pieces.append(piece)
                yield AnswerEvent("token", piece)
        except GeneratorUnavailable:
            raise
        except Exception as exc:  # a backend bug still reads as the generator failing, never a bare 500
            raise GeneratorUnavailable(f"generator {generator.name!r} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            close = getattr(tokens, "close", None)
            if close:
                close()
        timings["generation_ms"] = _ms(mark)
        answer = self._finish(request, "".join(pieces).strip(), passages, scorer, timings, started, generator.name, verdict)
        yield AnswerEvent("done", answer)

    def _finish(
        self, request: AskRequest, text: str, passages: list[Passage], scorer: EvidenceScorer, timings: dict[str, float],
        started: float, generator: str, verdict: Verdict,
    ) -> Answer:
        if not text or NOT_IN_DOCUMENTS.rstrip(".") in text:
            timings["total_ms"] = _ms(started)
            return Answer(request.question, "", passages, True, "the generator found no answer in the passages", timings, None, generator, verdict)
        mark = time.perf_counter()
        verified = verify(text, passages, scorer)
        timings["verification_ms"] = _ms(mark)
        timings["total_ms"] = _ms(started)
        return Answer(request.question, verified.text, passages, False, None, timings, verified, generator, verdict)

    def ask(self, request: AskRequest) -> Answer:
        """The whole answer at once."""
        answer = None
        for event in self.stream(request):
            if event.kind == "done":
                answer = event.data
        assert answer is not None
        return answer

    def _abstain_reason(self, passages: Sequence[Passage], verdict: Verdict) -> str | None:
        """Why to abstain, or None: no passages, or the verdict's reason at the calibrated floor."""
        if not passages:
            return "no passage in the collection matches the question"
        if not self.abstention.enabled:
            return None
        return verdict.reason(self.abstention.min_support)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
