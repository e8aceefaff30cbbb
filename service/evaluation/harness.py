"""Running an evaluation: build (or reuse) a scratch index of a set's documents, ask every question, score."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from indexes.backends import StoreOptions, open_store
from indexes.embedders import EmbedderSpec, choose_spec
from indexes.language import documents_language
from indexes.lexical import ANALYSIS_VERSION
from indexes.sentences import SPLITTER_VERSION
from indexes.schema import SCHEMA_VERSION
from indexes.search import MODES
from indexes.store import Embedders, Store
from indexes.types import Collection
from ingest.pipeline import SAMPLE_FILES, ChunkingOptions, IngestPipeline, SourceFile
from service.answer import Answerer, AskRequest
from indexes.embedding_cache import CachedEmbedder
from service.evaluation.datasets import EvalSet, Question
from service.evaluation.metrics import (
    abstention_scores, best_f1, contains_answer, mean, mrr_at_k, ndcg_at_k, recall_at_k,
)
from service.generators.registry import GeneratorRegistry
from service.rerankers import Reranker, build_reranker
from service.retrieval import RetrievalPipeline
from service.settings import AbstentionConfig, GeneratorConfig, RerankerConfig, RetrievalConfig
from service.verdict import Verdict

DEPTH = 100  # documents ranked per question: enough for recall@100


@dataclass(frozen=True)
class EvalConfig:
    """One configuration under test: the embedder (and its precision), how documents are indexed, retrieval,
    re-ranking (as the service's DOCQA_RERANKER__* says, unless overridden) and abstention."""

    backend: str = "sentence-transformers"
    model: str = EmbedderSpec().model
    precision: str = EmbedderSpec().precision
    titles: bool = True
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    abstention: AbstentionConfig = field(default_factory=AbstentionConfig)
    reranker: RerankerConfig = field(default_factory=RerankerConfig)

    def with_overrides(self, pairs: dict[str, str]) -> "EvalConfig":
        """A copy with `key=value` overrides: backend, model, precision, titles, any retrieval/abstention field, or
        `reranker.<field>` (reranker.model=PATH turns re-ranking on, reranker.model= off)."""
        config, retrieval, abstention = self, self.retrieval.model_dump(), self.abstention.model_dump()
        reranker = self.reranker.model_dump()
        for key, value in pairs.items():
            if key in ("backend", "model", "precision"):
                config = replace(config, **{key: value})
            elif key == "titles":
                config = replace(config, titles=value.lower() in ("1", "true", "yes", "on"))
            elif key in retrieval:
                retrieval[key] = value
            elif key in abstention:
                abstention[key] = value if value not in ("", "none") else None
            elif key.startswith("reranker.") and key.removeprefix("reranker.") in reranker:
                reranker[key.removeprefix("reranker.")] = value or None
            else:
                raise ValueError(f"unknown setting {key!r}; use backend, model, precision, titles, {sorted(retrieval)}, "
                                 f"{sorted(abstention)} or reranker.{{{','.join(sorted(reranker))}}}")
        return replace(config, retrieval=RetrievalConfig(**retrieval), abstention=AbstentionConfig(**abstention),
                       reranker=RerankerConfig(**reranker))

    def pipeline(self, store: Store) -> RetrievalPipeline:
        """The service's retrieval pipeline for this configuration, over `store`."""
        return RetrievalPipeline(store, self.retrieval, _reranker(self.reranker), self.reranker.candidates)

    def as_dict(self) -> dict[str, Any]:
        """Plain values, as reported with the figures."""
        return {
            "backend": self.backend, "model": self.model, "precision": self.precision, "titles": self.titles,
            "retrieval": self.retrieval.model_dump(), "abstention": self.abstention.model_dump(),
            "reranker": self.reranker.model_dump(mode="json", exclude={"api_key"}),
            "analysis_version": ANALYSIS_VERSION, "splitter_version": SPLITTER_VERSION,
        }


_RERANKERS: dict[str, Reranker | None] = {}


def _reranker(config: RerankerConfig) -> Reranker | None:
    """One re-ranker per configuration for the whole run (its model loads once, for retrieval and answers)."""
    key = config.model_dump_json()
    if key not in _RERANKERS:
        _RERANKERS[key] = build_reranker(config)
    return _RERANKERS[key]


def _caching_store(url: str | None, data_dir: Path, spec: EmbedderSpec, cache: Path,
                   options: StoreOptions | None = None) -> Store:
    """A store whose embedders go through the on-disk embedding cache."""
    return open_store(url, data_dir, embedders=Embedders(spec, wrap=lambda e: CachedEmbedder(e, cache)), options=options)


@dataclass
class ScratchIndex:
    """An evaluation set ingested into its own data directory: one document per paragraph or corpus entry."""

    store: Store
    collection: Collection
    seconds: float


def _fingerprint(evalset: EvalSet, config: EvalConfig, beir: bool) -> str:
    key = [config.backend, config.model, config.titles, beir, ANALYSIS_VERSION, SPLITTER_VERSION, SCHEMA_VERSION]
    if config.precision != "fp32":  # fp32 indexes keep the key they always had
        key.append(config.precision)
    digest = hashlib.sha256(json.dumps(key).encode())
    for key, (title, text) in sorted(evalset.documents.items()):
        digest.update(f"{key}\0{title}\0{text}\0".encode())
    return digest.hexdigest()[:16]


def _stem(title: str) -> str:
    """A file name that reads as the document's title (the pipeline takes titles from file names)."""
    cleaned = "".join(c if c.isalnum() or c in " -_.,()'" else " " for c in title).strip()
    return " ".join(cleaned.split())[:120] or "document"


def build_index(evalset: EvalSet, config: EvalConfig, work_dir: Path, beir: bool = False,
                store_url: str | None = None, options: StoreOptions | None = None) -> ScratchIndex:
    """Ingest the set's documents into a scratch index keyed by corpus and settings; reuse it when present.
    Without a store URL the index is an embedded store of its own; with one, a collection named by the same
    key in that store (a server store is shared, so each set and configuration gets its own collection)."""
    work_dir = Path(work_dir)
    spec = choose_spec(EmbedderSpec(backend=config.backend, model=config.model, precision=config.precision),
                       _language(evalset, beir))
    config = replace(config, backend=spec.backend, model=spec.model, precision=spec.precision)  # `auto`: its choice
    fingerprint = _fingerprint(evalset, config, beir)
    folder = work_dir / f"index-{fingerprint}"
    name = f"eval-{fingerprint}" if store_url else "eval"
    started = time.perf_counter()
    if not store_url and not (folder / "complete").exists():
        shutil.rmtree(folder, ignore_errors=True)  # an index whose ingestion never finished starts over
    store = _caching_store(store_url, folder / "data", spec, work_dir / "embeddings.sqlite3", options)
    existing = store.find_collection(name)
    complete = (folder / "complete").exists() if not store_url else (
        existing is not None and store.counts(existing)["documents"] == len(evalset.documents))
    if not complete:
        if existing is not None:
            store.delete_collection(name)
        collection = store.ensure_collection(name)
        files = _write_documents(evalset, folder / "files", beir, config.titles)
        embedder = store.embedder(collection)
        options = ChunkingOptions(max_tokens=embedder.identity.max_tokens, heading_context=config.titles and not beir)
        report = IngestPipeline(store, collection, chunking=options, workers=0).ingest(files)
        if report.failures:
            raise RuntimeError(f"{len(report.failures)} documents failed to ingest, e.g. {report.failures[0]}")
        if not store_url:
            (folder / "complete").write_text(json.dumps(config.as_dict()))
    collection = store.get_collection(name)
    store.warm_up(collection)  # as `docqa serve` starts: a reused index's derived files caught up (or built)
    return ScratchIndex(store, collection, time.perf_counter() - started)


def _language(evalset: EvalSet, beir: bool) -> str | None:
    """The language of the set's documents as `auto` tells it, from the first ones, as ingestion samples them."""
    first = list(evalset.documents.values())[:SAMPLE_FILES]
    return documents_language([f"{title} {text}" if beir else text for title, text in first])


def _write_documents(evalset: EvalSet, root: Path, beir: bool, titles: bool) -> list[SourceFile]:
    files = []
    for i, (key, (title, text)) in enumerate(evalset.documents.items()):
        body = f"{title} {text}".strip() if beir else text
        path = root / f"{i // 1000:03d}" / f"{i:06d}" / f"{_stem(title) if titles and not beir else 'document'}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
        files.append(SourceFile(path, key))
    return files


def ranked_documents(
    pipeline: RetrievalPipeline, index: ScratchIndex, query: Question, mode: str, drop_self: bool,
    warnings: list[str] | None = None,
) -> list[str]:
    """Document keys, best first (a document ranks where its best chunk does); BEIR drops the query's own id.
    The pipeline's warnings (a re-ranker that failed) are added to `warnings`."""
    found = [pipeline.search(index.collection, query.text, mode=mode, k=DEPTH + 1)]
    if mode == "hybrid":
        # Fusion depends on how many candidates each side brings (min-max floors, RRF ranks): the top 10
        # come from a search at the service's own depth, the tail (for recall@100) from the deep one.
        found.insert(0, pipeline.search(index.collection, query.text, mode=mode, k=10))
    if warnings is not None:
        warnings.extend(w for r in found for w in r.warnings)
    keys = list(dict.fromkeys(h.source for r in found for h in r.hits))
    return [k for k in keys if not (drop_self and k == query.qid)][:DEPTH]


def retrieval_metrics(rankings: Sequence[list[str]], relevant: Sequence[dict[str, int]]) -> dict[str, float]:
    """Mean recall@1/5/10/100, MRR@10 and nDCG@10 over questions."""
    out: dict[str, float] = {}
    for k in (1, 5, 10, 100):
        out[f"recall@{k}"] = mean([recall_at_k(r, g, k) for r, g in zip(rankings, relevant)])
    out["mrr@10"] = mean([mrr_at_k(r, g, 10) for r, g in zip(rankings, relevant)])
    out["ndcg@10"] = mean([ndcg_at_k(r, g, 10) for r, g in zip(rankings, relevant)])
    return out


def evaluate_retrieval(
    evalset: EvalSet, index: ScratchIndex, config: EvalConfig, modes: Sequence[str], beir: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, dict[str, float]]:
    """Per mode, ranking metrics through the service's retrieval pipeline. A set with unanswerable questions
    (SQuAD 2.0) is scored over its answerable ones, which have a passage to find, with the figures over every
    question under `all_questions`; `warnings` counts searches whose re-ranker failed."""
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    pipeline = config.pipeline(index.store)
    relevant = [evalset.relevant(q) for q in evalset.questions]
    answerable = [not q.impossible for q in evalset.questions]
    results: dict[str, dict[str, Any]] = {}
    for mode in modes:
        rankings, warnings = [], []
        for q in evalset.questions:
            rankings.append(ranked_documents(pipeline, index, q, mode, beir, warnings))
            if progress:
                progress(1)
        if evalset.has_impossible:
            pairs = [(r, g) for r, g, a in zip(rankings, relevant, answerable) if a]
            results[mode] = {**retrieval_metrics([r for r, _ in pairs], [g for _, g in pairs]),
                             "all_questions": retrieval_metrics(rankings, relevant)}
        else:
            results[mode] = retrieval_metrics(rankings, relevant)
        if pipeline.reranker is not None:
            results[mode]["rerank_failures"] = len(warnings)
    return results


@dataclass
class AnswerRecord:
    """What the answerer did for one question, with abstention switched off so any threshold can be applied."""

    question: Question
    text: str
    verdict: Verdict
    gold_retrieved: bool
    forced: bool  # no passages, or the generator itself found nothing: abstains at any threshold

    @property
    def evidence(self) -> float:
        """The best sentence's evidence score."""
        return self.verdict.evidence

    def abstains(self, min_support: float, min_rerank: float | None = None) -> bool:
        """The answerer's decision at these floors (a support floor below 0 stands for abstention switched off)."""
        if self.forced:
            return True
        return min_support >= 0 and self.verdict.reason(min_support, min_rerank) is not None


def collect_answers(
    evalset: EvalSet, index: ScratchIndex, config: EvalConfig, progress: Callable[[int], None] | None = None,
) -> list[AnswerRecord]:
    """Ask every question through the Answerer (extractive generator) and the service's retrieval pipeline,
    recording evidence and text."""
    answerer = Answerer(
        index.store, GeneratorRegistry(GeneratorConfig()), config.retrieval, replace_abstention(config.abstention),
        pipeline=config.pipeline(index.store),
    )
    records = []
    for q in evalset.questions:
        answer = answerer.ask(AskRequest(q.text, index.collection))
        gold = any(p.source == q.doc for p in answer.passages)
        records.append(AnswerRecord(q, answer.text, answer.verdict, gold, answer.abstained))
        if progress:
            progress(1)
    return records


def replace_abstention(abstention: AbstentionConfig) -> AbstentionConfig:
    """The same settings with abstention off: the harness applies the floor itself, to sweep it for free."""
    return abstention.model_copy(update={"enabled": False})


def answer_metrics(records: Sequence[AnswerRecord], min_support: float, min_rerank: float | None = None) -> dict[str, float]:
    """Answer quality on answerable questions: gold text contained, SQuAD F1, and contained when the gold paragraph was retrieved."""
    answerable = [r for r in records if not r.question.impossible and r.question.answers]
    def text(r: AnswerRecord) -> str:
        return "" if r.abstains(min_support, min_rerank) else r.text
    found = [r for r in answerable if r.gold_retrieved]
    answered_found = [r for r in found if not r.abstains(min_support, min_rerank)]
    return {
        "questions": len(answerable),
        "contains": mean([float(contains_answer(text(r), r.question.answers)) for r in answerable]),
        "f1": mean([best_f1(text(r), r.question.answers) for r in answerable]),
        "gold_retrieved": len(found) / len(answerable) if answerable else 0.0,
        "contains_when_retrieved": mean([float(contains_answer(r.text, r.question.answers)) for r in found]),
        "contains_when_retrieved_and_answered": mean([float(contains_answer(r.text, r.question.answers)) for r in answered_found]),
    }


def abstention_metrics(records: Sequence[AnswerRecord], min_support: float, min_rerank: float | None = None) -> dict[str, float]:
    """Abstention as a detector of unanswerable questions, at one floor (and re-rank floor, if set)."""
    scores = abstention_scores([r.abstains(min_support, min_rerank) for r in records],
                               [r.question.impossible for r in records])
    floors = {"min_support": min_support} if min_rerank is None else {"min_support": min_support, "min_rerank": min_rerank}
    return {**floors, **scores}


def reranked(records: Sequence[AnswerRecord]) -> bool:
    """Whether a re-ranker scored these answers' passages (it was on, and did not fail on all of them)."""
    return any(r.verdict.rerank is not None for r in records)


def sweep_rerank(records: Sequence[AnswerRecord], min_support: float, max_wrong: float = 0.15,
                 steps: int = 100) -> dict[str, Any]:
    """Beside a fixed min_support, try re-rank floors across the scores the re-ranker gave (its scale is its
    own: a sigmoid, a logit); the best as in `sweep`. The first row, at the lowest score, adds no abstention."""
    scores = [r.verdict.rerank for r in records if r.verdict.rerank is not None]
    low, high = min(scores), max(scores)
    floors = [round(low + (high - low) * i / steps, 6) for i in range(steps + 1)]
    rows = [abstention_metrics(records, min_support, floor) for floor in floors]
    allowed = [r for r in rows if r["wrongly_abstained"] <= max_wrong] or rows[:1]
    best = max(allowed, key=lambda r: (r["f1"], -r["min_rerank"]))
    return {"best": best, "max_wrongly_abstained": max_wrong, "rows": rows}


def sweep(records: Sequence[AnswerRecord], max_wrong: float = 0.15, step: float = 0.01) -> dict[str, Any]:
    """Try every floor in [0, 1]; the best is the highest abstention F1 whose wrongly-abstained rate stays within max_wrong."""
    rows = [abstention_metrics(records, round(i * step, 4)) for i in range(int(1 / step) + 1)]
    allowed = [r for r in rows if r["wrongly_abstained"] <= max_wrong] or rows[:1]
    best = max(allowed, key=lambda r: (r["f1"], -r["min_support"]))
    return {"best": best, "max_wrongly_abstained": max_wrong, "rows": rows}


def subset(evalset: EvalSet, limit: int | None) -> EvalSet:
    """At most `limit` questions, spread evenly over the set (every n-th), so every article is represented."""
    if not limit or limit >= len(evalset.questions):
        return evalset
    step = len(evalset.questions) / limit
    chosen = [evalset.questions[int(i * step)] for i in range(limit)]
    return EvalSet(evalset.name, evalset.documents, chosen, evalset.qrels, evalset.has_impossible)


def report_dict(
    evalset: EvalSet, config: EvalConfig, retrieval: dict[str, dict[str, float]],
    records: Sequence[AnswerRecord] | None, timings: dict[str, float],
) -> dict[str, Any]:
    """The JSON report: retrieval per mode, answers, abstention, config."""
    report: dict[str, Any] = {"dataset": evalset.name, "questions": len(evalset.questions), "retrieval": retrieval}
    if evalset.has_impossible:  # retrieval is scored over these; `all_questions` over every one
        report["answerable_questions"] = sum(not q.impossible for q in evalset.questions)
    if records is not None:
        floor = config.abstention.min_support if config.abstention.enabled else -1.0
        report["answers"] = answer_metrics(records, floor, config.abstention.min_rerank)
        if evalset.has_impossible:
            report["abstention"] = abstention_metrics(records, floor, config.abstention.min_rerank)
    report["config"] = config.as_dict()
    report["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    return report
