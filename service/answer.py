"""retrieve (service/retrieval.py) → generate → verify citations → Answer. Never imports fastapi."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Sequence

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from indexes.errors import InvalidInput
from indexes.filters import Filters
from indexes.store import Store
from indexes.types import Collection
from service.chat import rewrite_follow_up
from service.citations import VerifiedAnswer, verify
from service.errors import GeneratorUnavailable
from service.evidence import EvidenceScorer, SentenceVectors, passage_sentences
from service.generators.base import NOT_IN_DOCUMENTS, Passage
from service.generators.registry import GeneratorRegistry
from service.questions import analyse_question
from service.retrieval import RetrievalPipeline, Retrieved
from service.settings import AbstentionConfig, RetrievalConfig
from service.verdict import Verdict, judge

tracer = trace.get_tracer("docqa.answer")


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
    warnings: list[str] = field(default_factory=list)  # what went wrong without failing the answer (re-ranking)
    id: str | None = None  # set when the answer is recorded for feedback (service/feedback.py)

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


class Answerer:
    """Answers questions over a Store with the configured retrieval pipeline, generators and abstention."""

    def __init__(
        self, store: Store, generators: GeneratorRegistry, retrieval: RetrievalConfig,
        abstention: AbstentionConfig, max_question_chars: int = 2000, max_top_k: int = 50,
        pipeline: RetrievalPipeline | None = None,
    ) -> None:
        self.store = store
        self.pipeline = pipeline or RetrievalPipeline(store, retrieval)
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

    def retrieve(self, request: AskRequest) -> Retrieved:
        """The hits for a question, through the pipeline, as configured."""
        return self.pipeline.search(request.collection, request.question, mode=request.mode, k=request.top_k,
                                    filters=request.filters)

    def stream(self, request: AskRequest) -> Iterator[AnswerEvent]:
        """citations, then tokens, then done. Closing the iterator stops the generator.

        The answer is one span (`answer`) with children retrieve, evidence, generate and verify. It is made current
        only between the yields (`use_span`), never across one: the caller may step this iterator in any thread."""
        self.validate(request)
        span = tracer.start_span("answer", attributes={"docqa.collection": request.collection.name,
                                                       "docqa.mode": request.mode or self.retrieval.mode})
        try:
            yield from self._stream(request, span)
        finally:
            span.end()

    def _stream(self, request: AskRequest, span: Span) -> Iterator[AnswerEvent]:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        with trace.use_span(span):
            retrieved = self.retrieve(request)
            passages = self.pipeline.context(retrieved.hits)
            timings.update(retrieved.timings)
            timings["retrieval_ms"] = _ms(started)
            warnings = retrieved.warnings
            scorer = self.scorer(request.collection)
            generator = self.generators.get(request.generator, scorer)
            span.set_attributes({"docqa.generator": generator.name, "docqa.passages": len(passages)})
            mark = time.perf_counter()
            with tracer.start_as_current_span("evidence"):
                ranked = scorer.rank(request.question, passage_sentences(passages))
                verdict = judge(analyse_question(request.question), ranked, passages, scorer.weights)
                verdict = replace(verdict, rerank=retrieved.best_rerank)
            timings["evidence_ms"] = _ms(mark)
        yield AnswerEvent("citations", passages)
        reason = self._abstain_reason(passages, verdict)
        if reason:
            timings["total_ms"] = _ms(started)
            span.set_attributes({"docqa.abstained": True, "docqa.reason": reason})
            yield AnswerEvent("done", Answer(request.question, "", passages, True, reason, timings, None, generator.name,
                                             verdict, warnings))
            return
        mark = time.perf_counter()
        pieces: list[str] = []
        generating = tracer.start_span("generate", context=trace.set_span_in_context(span),
                                       attributes={"docqa.generator": generator.name})
        tokens = generator.generate(request.question, passages)
        try:
            for piece in tokens:
                pieces.append(piece)
                yield AnswerEvent("token", piece)
        except GeneratorUnavailable as exc:
            _failed(generating, exc)
            raise
        except Exception as exc:  # a backend bug still reads as the generator failing, never a bare 500
            _failed(generating, exc)
            raise GeneratorUnavailable(f"generator {generator.name!r} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            close = getattr(tokens, "close", None)
            if close:
                close()
            generating.set_attribute("docqa.pieces", len(pieces))
            generating.end()
        timings["generation_ms"] = _ms(mark)
        with trace.use_span(span):
            answer = self._finish(request, "".join(pieces).strip(), passages, scorer, timings, started, generator.name,
                                  verdict)
        span.set_attribute("docqa.abstained", answer.abstained)
        if answer.reason:
            span.set_attribute("docqa.reason", answer.reason)
        answer.warnings = warnings
        yield AnswerEvent("done", answer)

    def _finish(
        self, request: AskRequest, text: str, passages: list[Passage], scorer: EvidenceScorer, timings: dict[str, float],
        started: float, generator: str, verdict: Verdict,
    ) -> Answer:
        if not text or NOT_IN_DOCUMENTS.rstrip(".") in text:
            timings["total_ms"] = _ms(started)
            return Answer(request.question, "", passages, True, "the generator found no answer in the passages", timings, None, generator, verdict)
        mark = time.perf_counter()
        with tracer.start_as_current_span("verify") as span:
            verified = verify(text, passages, scorer)
            span.set_attributes({"docqa.claims": len(verified.claims),
                                 "docqa.cited": len({n for c in verified.claims for n in c.cited})})
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
        return verdict.reason(self.abstention.min_support, self.abstention.min_rerank)


def _failed(span: Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
