"""docqa's settings: pydantic-settings, `DOCQA_*` environment variables and `.env`, read once at the edge.

Precedence: what the caller passes (the `docqa` command's flags) > the environment > `.env` in the current
directory > the defaults. A setting the lower layers also take (embedder, store, search tuning, per-file
limits) has its default in their plain dataclass, and the section hands them that dataclass, filled in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from indexes.backends import StoreOptions
from indexes.embedders import EmbedderSpec
from indexes.search import DEFAULT_K, DEFAULT_MODE, SearchTuning
from ingest.pipeline import IngestLimits, OcrOptions
from service.generators.base import generator_plugins, section_name


class EmbedderConfig(BaseModel):
    """Which model embeds new collections (existing ones keep the model that built them)."""

    backend: str = EmbedderSpec.backend
    model: str = EmbedderSpec.model  # "auto": by the language of a new collection's documents (indexes.embedders.choose_spec)
    device: str = EmbedderSpec.device
    precision: str = Field(EmbedderSpec.precision, pattern="^(fp32|bf16|fp16)$")
    batch_size: int = Field(EmbedderSpec.batch_size, gt=0)
    # The service embeds for many small requests at once: one torch intra-op thread each avoids oversubscribing
    # the cores (query embedding: 9.5 ms with 1 thread vs 38-158 ms with 2 under load). FAISS always scans a
    # query in one thread (indexes/vectors.py).
    torch_threads: int = Field(1, gt=0)

    def spec(self) -> EmbedderSpec:
        """The plain spec the indexes package builds embedders from."""
        return EmbedderSpec(**self.model_dump(include=set(EmbedderSpec.__dataclass_fields__)))


class GeneratorConfig(BaseModel):
    """The default generator, which ones a request may pick, and each backend's own section,
    `DOCQA_GENERATOR__<NAME>__<FIELD>`, read by the settings model the backend registers with its plugin
    (service/generators/base.py): a backend's settings never need a field here."""

    model_config = ConfigDict(extra="allow")

    backend: str = "extractive"
    enabled: list[str] = ["extractive"]

    @model_validator(mode="after")
    def _read_sections(self) -> GeneratorConfig:
        """Every section given, validated by its backend's model; one no installed backend reads is an error."""
        sections = self.__pydantic_extra__ or {}
        if not sections:
            return self
        installed = {section_name(name): plugin for name, plugin in generator_plugins().items()}
        for key, value in sections.items():
            if key not in installed:
                raise ValueError(f"DOCQA_GENERATOR__{key.upper()}: no installed generator reads it; "
                                 f"installed: {sorted(installed)}")
            model = installed[key].settings
            try:
                sections[key] = model.model_validate_json(value) if isinstance(value, str) else model.model_validate(value)
            except ValidationError as exc:
                raise ValueError("; ".join(
                    f"{'__'.join(['DOCQA_GENERATOR', key, *map(str, e['loc'])]).upper()}: {e['msg']}"
                    for e in exc.errors()
                )) from None
        return self

    def section(self, generator: str) -> BaseModel:
        """The settings of the generator called `generator`: as given, else its model's defaults."""
        given = (self.model_extra or {}).get(section_name(generator))
        return given if given is not None else generator_plugins()[generator].settings()


class RetrievalConfig(BaseModel):
    """How passages are found and how much of them reaches the generator."""

    mode: str = Field(DEFAULT_MODE, pattern="^(dense|lexical|hybrid)$")
    top_k: int = Field(DEFAULT_K, gt=0)
    candidates: int = Field(SearchTuning.candidates, gt=0)
    fusion: str = SearchTuning.fusion  # convex combination of min-max scores; "rrf" and "zscore" too (docs/quality.md)
    rrf_k: int = Field(SearchTuning.rrf_k, gt=0)
    # Score fusion (docs/quality.md): the dense side's weight; for short questions, a chunk's best sentence's
    # share of its dense score and the dense side's weight then.
    dense_weight: float = Field(SearchTuning.dense_weight, ge=0, le=1)
    sentence_weight: float = Field(SearchTuning.sentence_weight, ge=0, le=1)
    sentence_dense_weight: float = Field(SearchTuning.sentence_dense_weight, ge=0, le=1)
    # A long query's pseudo-relevance feedback: how many top chunks, and how far the query moves toward them (0: off).
    feedback_chunks: int = Field(SearchTuning.feedback_chunks, ge=0, le=20)
    feedback_weight: float = Field(SearchTuning.feedback_weight, ge=0, le=2)
    context_chars: int = Field(6000, gt=0)

    def tuning(self) -> SearchTuning:
        """The ranking settings, as the Searcher takes them."""
        return SearchTuning(**self.model_dump(include=set(SearchTuning.__dataclass_fields__)))


class AbstentionConfig(BaseModel):
    """When evidence is too weak, say so. See docs/quality.md for how `min_support` was calibrated."""

    enabled: bool = True
    min_support: float = 0.39  # calibrated on SQuAD 2.0 even articles, checked on odd (docs/quality.md)
    # With a re-ranker on: abstain when it scores the best passage below this (None: off). Its scale is the
    # model's own, so it is set by `docqa eval calibrate` for one model, never shipped.
    min_rerank: float | None = None


class RerankerConfig(BaseModel):
    """An optional second stage that re-scores the top `candidates` fused hits with a model that reads the
    question and each passage together. Off while `model` is unset (no trained re-ranker ships with docqa).

    `cross-encoder`: any sentence-transformers CrossEncoder by name or path, in-process (device, precision,
    batch_size as for the embedder). `http`: a `/rerank` server (`base_url` + `/rerank`): `api` "cohere" speaks
    Cohere's, Jina's and vLLM's shape, "tei" Hugging Face text-embeddings-inference's; key, timeout and retries
    as for the OpenAI-compatible generator."""

    model: str | None = None
    backend: str = "cross-encoder"
    candidates: int = Field(30, gt=0, le=1000)
    device: str = "cpu"
    precision: str = Field("fp32", pattern="^(fp32|bf16|fp16)$")
    batch_size: int = Field(32, gt=0)
    base_url: str = Field("http://127.0.0.1:8080", pattern="^https?://")
    api: Literal["cohere", "tei"] = "cohere"
    api_key: SecretStr | None = None
    timeout: float = Field(10.0, gt=0)
    retries: int = Field(2, ge=0, le=10)

    @property
    def enabled(self) -> bool:
        """Whether a re-ranker is configured at all."""
        return bool(self.model)


class LimitsConfig(BaseModel):
    """Bounds that keep bad input from hurting the service; the per-file ones bind `docqa ingest` too."""

    max_upload_bytes: int = Field(IngestLimits.max_file_bytes, gt=0)  # per file, uploaded or ingested
    max_request_bytes: int = Field(1024 * 1024, gt=0)
    max_question_chars: int = Field(2000, gt=0)
    max_top_k: int = Field(50, gt=0)
    max_files_per_upload: int = Field(100, gt=0)
    max_concurrent_jobs: int = Field(1, gt=0)
    max_pages: int = Field(IngestLimits.max_pages, gt=0)
    max_text_chars: int = Field(IngestLimits.max_text_chars, gt=0)
    max_chunks: int = Field(IngestLimits.max_chunks, gt=0)
    max_parse_seconds: float = Field(IngestLimits.max_parse_seconds, gt=0)
    # Worked on at once, scaled to the cores (more only interleave, adding latency, not throughput); past
    # that, up to `max_queued_requests` wait, each at most `queue_seconds`, then 503 + Retry-After. Answers
    # queue apart for their own slots (benchmarks/load.py).
    max_concurrent_requests: int = Field(default_factory=lambda: 6 * (os.cpu_count() or 1), gt=0)
    max_concurrent_answers: int = Field(default_factory=lambda: os.cpu_count() or 1, gt=0)
    max_queued_requests: int = Field(100, ge=0)
    queue_seconds: float = Field(30.0, ge=0)

    def per_file(self) -> IngestLimits:
        """The limits every ingested file must keep, as the pipeline takes them."""
        return IngestLimits(self.max_upload_bytes, self.max_text_chars, self.max_chunks, self.max_pages,
                            self.max_parse_seconds)


class OcrConfig(BaseModel):
    """Reading pages without a text layer (scans, images) with Tesseract: on wherever it is installed."""

    enabled: bool = OcrOptions.enabled
    languages: str = Field(OcrOptions.languages, pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$")  # Tesseract's: eng+por
    dpi: int = Field(OcrOptions.dpi, ge=70, le=1200)
    deskew: bool = OcrOptions.deskew

    def options(self) -> OcrOptions:
        """The OCR options, as the pipeline takes them."""
        return OcrOptions(**self.model_dump())


class StoreConfig(BaseModel):
    """Where documents, vectors and the service's records live. No URL: the embedded SQLite + FAISS store under
    `data_dir`; `postgresql://user:password@host:5432/db`: PostgreSQL with pgvector, shared by any number of
    `docqa serve` processes on any number of machines."""

    url: str | None = None
    pool_size: int = Field(StoreOptions.pool_size, gt=0, le=1000)
    connect_timeout: float = Field(StoreOptions.connect_timeout, gt=0)
    statement_timeout: float = Field(StoreOptions.statement_timeout, gt=0)
    ef_search: int = Field(StoreOptions.ef_search, gt=0, le=1000)  # pgvector HNSW candidate list; recall@10 vs exact in README
    # the embedded store's vector index: flat (exact) below ivf_threshold chunks, IVF with ivf_quantiser codes from
    # it, nprobe chosen for ivf_recall (recall@10 vs exact); mmap maps saved files read-only (README, "Vectors")
    ivf_threshold: int = Field(StoreOptions.ivf_threshold, gt=0)
    ivf_quantiser: str = Field(StoreOptions.ivf_quantiser, pattern="^(sq8|fp16|pq)$")
    ivf_recall: float = Field(StoreOptions.ivf_recall, gt=0, le=1)
    mmap: bool = StoreOptions.mmap
    # the embedded store's BM25: fts5 (SQLite), tantivy (block-max WAND, indexes/lexical_index.py), or auto:
    # tantivy from lexical_threshold chunks, where FTS5 gets slow (docs/quality.md, "BM25 by tantivy")
    lexical: str = Field(StoreOptions.lexical, pattern="^(auto|fts5|tantivy)$")
    lexical_threshold: int = Field(StoreOptions.lexical_threshold, ge=0)

    def options(self) -> StoreOptions:
        """The backend options, as `indexes.backends.open_store` takes them."""
        return StoreOptions(**self.model_dump(include=set(StoreOptions.__dataclass_fields__)))


class SourcesConfig(BaseModel):
    """How sources given as URLs are read (fsspec): options passed to the URL's filesystem, as JSON, e.g.
    DOCQA_SOURCES__STORAGE_OPTIONS='{"endpoint_url": "http://minio:9000"}' for s3://. Credentials are best left to
    each filesystem's own variables (AWS_ACCESS_KEY_ID, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*)."""

    storage_options: dict[str, Any] = {}


class FeedbackConfig(BaseModel):
    """Answer feedback (service/feedback.py): every answer is recorded with its question, citations, collection and
    the key that asked, under the id its response carries, so people can rate it and `docqa eval qa --feedback`
    can replay the rated ones. A row is about 1-2 KB per answer; unrated answers older than `keep_days` are
    deleted (None: kept), rated ones are kept. Off: answers carry no id and nothing is recorded."""

    enabled: bool = True
    keep_days: float | None = Field(90.0, gt=0)


class AuthConfig(BaseModel):
    """API keys: off for the local demo, on with DOCQA_AUTH__ENABLED=true."""

    enabled: bool = False


class Settings(BaseSettings):
    """Everything docqa reads from its environment: the service and every `docqa` command."""

    # Errors name the setting, never echo its value: generator sections and store URLs hold secrets.
    model_config = SettingsConfigDict(env_prefix="DOCQA_", env_nested_delimiter="__", env_file=".env", extra="ignore",
                                      hide_input_in_errors=True)

    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    workers: int = Field(1, gt=0)
    default_collection: str = "default"
    server_paths: list[Path] = []
    log_level: str = "info"
    log_json: bool = True
    store: StoreConfig = StoreConfig()
    embedder: EmbedderConfig = EmbedderConfig()
    generator: GeneratorConfig = GeneratorConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    abstention: AbstentionConfig = AbstentionConfig()
    reranker: RerankerConfig = RerankerConfig()
    limits: LimitsConfig = LimitsConfig()
    ocr: OcrConfig = OcrConfig()
    sources: SourcesConfig = SourcesConfig()
    auth: AuthConfig = AuthConfig()
    feedback: FeedbackConfig = FeedbackConfig()
