"""Wire models: what the HTTP API accepts and returns. Internal dataclasses never go out raw."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from indexes.filters import Filters, RowId  # noqa: F401 - one filter model for the HTTP schema and the store

COLLECTION_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MetadataValue = str | int | float | bool


class Problem(BaseModel):
    """An error, as RFC 9457 problem details."""

    type: str = Field(examples=["https://docqa.dev/problems/not-found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["collection 'handbook' not found"])
    request_id: str | None = None


class AskBody(BaseModel):
    """A question for the documents of one collection."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"question": "How many nodes does the staging cluster have?", "collection": "default"}]},
    )

    question: str = Field(min_length=1, max_length=100_000)
    collection: str | None = Field(None, pattern=COLLECTION_NAME, description="Default: DOCQA_DEFAULT_COLLECTION (`default`).")
    top_k: int | None = Field(None, ge=1, le=1000)
    filters: Filters | None = None
    generator: str | None = Field(None, description="extractive, openai, llamacpp or bedrock (among those enabled).")
    mode: Literal["dense", "lexical", "hybrid"] | None = None
    stream: bool = Field(False, description="Answer as Server-Sent Events: citations, token..., done | error.")


class Locator(BaseModel):
    """Where a passage sits in its document, in the document's own terms."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"kind": "page", "page": 3},
                                                              {"kind": "sheet", "sheet": "Q3", "rows": [2, 41]}]})

    kind: Literal["page", "slide", "chapter", "sheet"]
    page: int | None = None
    slide: int | None = None
    chapter: int | None = None
    sheet: str | None = Field(None, description="The sheet's name (none for a CSV file's one sheet).")
    rows: list[int] | None = Field(None, description="First and last row, numbered as in the sheet (header: row 1).")


class Placed(BaseModel):
    """Where a passage is and how its text was read."""

    locator: Locator | None = Field(None, description="Page (PDF), slide (PPTX), sheet and rows (XLSX, CSV) or chapter (EPUB); none for formats without places.")
    locator_label: str | None = Field(None, examples=["page 3"], description='The locator as people read it: "page 3", "slide 5", "sheet Q3, rows 2–41", "chapter 2".')
    ocr: bool = Field(False, description="Its text was read from a scanned page or image by OCR.")


class Citation(Placed):
    """A numbered passage given to the generator; `cited` when the answer refers to it as [n]."""

    n: int = Field(examples=[1])
    document_id: int | None = Field(examples=[3])
    title: str = Field(examples=["Northwind Engineering Handbook"])
    source: str = Field(examples=["handbook.md"])
    page: int | None = Field(None, examples=[2])
    heading_path: list[str] = Field(default_factory=list, examples=[["Infrastructure", "Clusters"]])
    text: str
    score: float
    cited: bool = False
    supported: bool | None = Field(None, description="Whether the claims citing it are backed by it.")
    support: float | None = None
    rerank: float | None = Field(None, examples=[0.91], description="The re-ranker's score of its best chunk (none without a re-ranker, or when it failed).")


class AskResponse(BaseModel):
    """An answer with checkable citations, or an abstention with the closest passages."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{
                "answer": "The staging cluster has 12 nodes [1].",
                "citations": [{"n": 1, "document_id": 3, "title": "Northwind Engineering Handbook", "source": "handbook.md",
                               "page": None, "locator": None, "locator_label": None, "ocr": False,
                               "heading_path": ["Infrastructure"], "text": "The staging cluster has 12 nodes.",
                               "score": 0.032, "cited": True, "supported": True, "support": 1.0, "rerank": 0.91}],
                "abstained": False, "reason": None, "answer_support": 1.0, "unsupported_claims": [],
                "generator": "extractive", "timings": {"retrieval_ms": 61.3, "rerank_ms": 40.1, "total_ms": 120.2},
                "warnings": [], "answer_id": "ans_5b0e3c9a1f7d4e2b8c6a0d13",
            }, {
                "answer": "The staging cluster has 12 nodes [1].",
                "citations": [{"n": 1, "document_id": 3, "title": "Northwind Engineering Handbook", "source": "handbook.md",
                               "page": None, "locator": None, "locator_label": None, "ocr": False,
                               "heading_path": ["Infrastructure"], "text": "The staging cluster has 12 nodes.",
                               "score": 0.032, "cited": True, "supported": True, "support": 1.0, "rerank": None}],
                "abstained": False, "reason": None, "answer_support": 1.0, "unsupported_claims": [],
                "generator": "extractive", "timings": {"retrieval_ms": 10021.3, "rerank_ms": 10000.2, "total_ms": 10080.2},
                "warnings": ["re-ranking failed, passages are in fused order: re-ranking server at http://reranker:8080: "
                             "timed out (ReadTimeout) (after 3 attempts)"],
            }]
        }
    )

    answer: str
    citations: list[Citation]
    abstained: bool
    reason: str | None = None
    answer_support: float | None = None
    unsupported_claims: list[str] = Field(default_factory=list)
    generator: str
    rewritten_question: str | None = None
    timings: dict[str, float] = Field(description="Milliseconds per stage: retrieval (re-ranking included) and within it dense, lexical, fusion and rerank; evidence, generation, verification, total.")
    warnings: list[str] = Field(default_factory=list, description="What went wrong without failing the answer: a re-ranker that failed leaves the fused order.")
    answer_id: str | None = Field(None, examples=["ans_5b0e3c9a1f7d4e2b8c6a0d13"],
                                  description="Rate the answer with POST /v1/answers/{answer_id}/feedback (none while DOCQA_FEEDBACK__ENABLED is false).")


class SearchBody(BaseModel):
    """A search over one collection."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"query": "staging cluster nodes", "mode": "hybrid", "top_k": 5}]})

    query: str = Field(min_length=1, max_length=100_000)
    collection: str | None = Field(None, pattern=COLLECTION_NAME, description="Default: DOCQA_DEFAULT_COLLECTION (`default`).")
    mode: Literal["dense", "lexical", "hybrid"] | None = Field(None, description="Default: DOCQA_RETRIEVAL__MODE.")
    top_k: int | None = Field(None, ge=1, le=1000, description="Default: DOCQA_RETRIEVAL__TOP_K.")
    filters: Filters | None = None


class SearchHit(Placed):
    """One ranked passage."""

    chunk_id: int
    document_id: int
    title: str
    source: str
    page: int | None = None
    page_end: int | None = None
    heading_path: list[str] = Field(default_factory=list)
    text: str
    score: float
    scores: dict[str, float] = Field(default_factory=dict, examples=[{"dense": 0.71, "lexical": 7.9, "rerank": 0.91}],
                                     description="Each retriever's own score, and `rerank`: the re-ranker's, when one is on.")


class SearchResponse(BaseModel):
    """Ranked passages, best first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "query": "staging cluster nodes", "mode": "hybrid", "timings": {"retrieval_ms": 18.4}, "warnings": [],
        "hits": [{"chunk_id": 12, "document_id": 3, "title": "Northwind Engineering Handbook", "source": "handbook.md",
                  "page": None, "page_end": None, "locator": None, "locator_label": None, "ocr": False,
                  "heading_path": ["Infrastructure"],
                  "text": "The staging cluster has 12 nodes.", "score": 0.032, "scores": {"dense": 0.71, "lexical": 7.9}}],
    }, {
        "query": "staging cluster nodes", "mode": "hybrid", "timings": {"retrieval_ms": 58.4, "rerank_ms": 40.0}, "warnings": [],
        "hits": [{"chunk_id": 12, "document_id": 3, "title": "Northwind Engineering Handbook", "source": "handbook.md",
                  "page": None, "page_end": None, "locator": None, "locator_label": None, "ocr": False,
                  "heading_path": ["Infrastructure"], "text": "The staging cluster has 12 nodes.", "score": 0.032,
                  "scores": {"dense": 0.71, "lexical": 7.9, "rerank": 0.91}}],
    }]})

    query: str
    mode: str
    hits: list[SearchHit]
    timings: dict[str, float] = Field(description="Milliseconds: retrieval (re-ranking included) and within it dense, lexical, fusion and rerank.")
    warnings: list[str] = Field(default_factory=list, description="What went wrong without failing the search: a re-ranker that failed leaves the fused order.")


class CollectionCreate(BaseModel):
    """A new collection."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "handbook", "description": "Team handbook"}]})

    name: str = Field(pattern=COLLECTION_NAME)
    description: str = Field("", max_length=1000)


class CollectionOut(BaseModel):
    """A collection with its counts and the embedder that built it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "default", "description": "", "documents": 5, "chunks": 42, "failed": 0, "embedder": {"model": "sentence-transformers/all-MiniLM-L6-v2", "dim": 384}, "created_at": 1764158400.0}]})

    name: str
    description: str
    documents: int
    chunks: int
    failed: int
    embedder: dict[str, Any]
    created_at: float


class FormatOut(BaseModel):
    """A file format docqa reads, and the suffixes that name it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "PDF", "suffixes": [".pdf"]}]})

    name: str
    suffixes: list[str]


class DocumentOut(BaseModel):
    """A document in the catalog."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"id": 3, "source": "handbook.md", "title": "Northwind Engineering Handbook", "status": "ok", "error": None, "warnings": [], "metadata": {}, "pages": None, "chunks": 9, "sha256": "ab12…", "size": 5120, "created_at": 1764158400.0, "updated_at": 1764158400.0}, {"id": 4, "source": "scan.pdf", "title": None, "status": "failed", "error": "not a PDF file (no %PDF header)", "warnings": [], "metadata": {}, "pages": None, "ocr_pages": [], "chunks": 0, "sha256": "cd34…", "size": 2048, "created_at": 1764158400.0, "updated_at": 1764158400.0}]})

    id: int
    source: str
    title: str | None
    status: Literal["ok", "failed"]
    error: str | None
    warnings: list[str]
    metadata: dict[str, Any]
    pages: int | None
    ocr_pages: list[int] = Field(default_factory=list, description="Pages whose text was read by OCR.")
    chunks: int
    sha256: str | None
    size: int | None
    created_at: float
    updated_at: float


class ChunkOut(Placed):
    """One chunk of a document."""

    id: int
    ordinal: int
    text: str
    start: int
    end: int
    page_start: int | None
    page_end: int | None
    heading_path: list[str]


class DocumentDetail(DocumentOut):
    """A document with its chunks."""

    chunk_list: list[ChunkOut]


class FileOutcome(BaseModel):
    """What happened to one file of an ingestion job."""

    source: str
    status: str = Field(examples=["ingested"], description="ingested, unchanged, replaced, removed, failed (or pending).")
    reason: str | None = None
    chunks: int = 0
    document_id: int | None = None


class JobOut(BaseModel):
    """An ingestion job and its per-file results."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "3f2a9c0e6b1d4e8f", "state": "succeeded", "collection": "default", "files": [{"source": "handbook.md", "status": "ingested", "reason": None, "chunks": 9, "document_id": 3}], "counts": {"ingested": 1, "failed": 0}, "error": None, "created_at": 1764158400.0, "started_at": 1764158400.1, "finished_at": 1764158402.3}]})

    id: str
    state: Literal["queued", "running", "succeeded", "failed"]
    collection: str
    files: list[FileOutcome] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    error: str | None = None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None


class JobSummary(BaseModel):
    """An ingestion job in a list: its files counted by status (GET /v1/jobs/{id} lists them)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "3f2a9c0e6b1d4e8f", "state": "running", "collection": "default", "file_count": 3, "counts": {"ingested": 1, "failed": 1, "pending": 1}, "error": None, "created_at": 1764158400.0, "started_at": 1764158400.1, "finished_at": None}]})

    id: str
    state: Literal["queued", "running", "succeeded", "failed"]
    collection: str
    file_count: int = Field(description="Files in the job (and any it removed while syncing).")
    counts: dict[str, int] = Field(default_factory=dict, description="Files by status: ingested, unchanged, replaced, removed, failed, pending.")
    error: str | None = None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None


class PathIngest(BaseModel):
    """Ingest a folder or file that already lives on the server (only under configured roots)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"path": "/srv/docs/handbook", "sync": True}]})

    path: str = Field(min_length=1, max_length=4096)
    sync: bool = False
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)


class Health(BaseModel):
    """Liveness or readiness."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ok", "checks": {"index": "ok", "model": "ok"}},
        {"status": "not ready", "checks": {"index": "ok", "model": "loading"}},
    ]})

    status: Literal["ok", "not ready"]
    checks: dict[str, str] = Field(default_factory=dict)


class FeedbackBody(BaseModel):
    """A rating of one answer: thumbs up or down, with an optional comment. Rating again with the same key replaces it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"rating": "up"}, {"rating": "down", "comment": "It cites the 2023 handbook; the 2025 one says 16 nodes."}]})

    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=2000)


class FeedbackOut(BaseModel):
    """A rating as stored: one per answer and key (`key_id` none while auth is off)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "answer_id": "ans_5b0e3c9a1f7d4e2b8c6a0d13", "rating": "down", "key_id": "3f2a9c0e6b1d",
        "comment": "It cites the 2023 handbook; the 2025 one says 16 nodes.", "created_at": 1764158460.0, "updated_at": 1764158460.0}]})

    answer_id: str
    rating: Literal["up", "down"]
    comment: str | None = None
    key_id: str | None = None
    created_at: float
    updated_at: float = Field(description="When it was last set; created_at stays that of the first rating.")


class RecordedCitation(Placed):
    """A passage an answer was given, as recorded with it (its text is not kept: the document holds it)."""

    n: int
    document_id: int | None
    title: str
    source: str
    page: int | None = None
    cited: bool = Field(description="The answer cites it.")


class AnswerRecordOut(BaseModel):
    """An answer as it was given, with its ratings."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "ans_5b0e3c9a1f7d4e2b8c6a0d13", "collection": "default", "question": "How many nodes does the staging cluster have?",
        "asked": None, "answer": "The staging cluster has 12 nodes [1].", "abstained": False, "reason": None, "origin": "ask",
        "key_id": "3f2a9c0e6b1d", "created_at": 1764158400.0,
        "citations": [{"n": 1, "document_id": 3, "title": "Northwind Engineering Handbook", "source": "handbook.md", "page": None,
                       "locator": None, "locator_label": None, "ocr": False, "cited": True}],
        "feedback": [{"answer_id": "ans_5b0e3c9a1f7d4e2b8c6a0d13", "rating": "up", "comment": None, "key_id": "3f2a9c0e6b1d",
                      "created_at": 1764158460.0, "updated_at": 1764158460.0}],
    }]})

    id: str
    collection: str
    question: str = Field(description="The question retrieval searched (a follow-up in its standalone form).")
    asked: str | None = Field(None, description="The question as typed, when it was rewritten.")
    answer: str
    citations: list[RecordedCitation]
    abstained: bool
    reason: str | None = None
    origin: str = Field(examples=["ask"], description="Where it was asked: ask, conversation, chat-completions or mcp.")
    key_id: str | None = Field(None, description="The key that asked (none while auth is off).")
    created_at: float
    feedback: list[FeedbackOut] = Field(default_factory=list)
