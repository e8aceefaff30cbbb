"""The few records that cross package lines: chunks going in, hits coming out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence


@dataclass(frozen=True)
class ChunkInput:
    """A chunk ready to store. `text` is `document_text[start:end]`; `embed_text` adds heading context."""

    text: str
    embed_text: str
    start: int
    end: int
    page_start: int | None = None
    page_end: int | None = None
    heading_path: tuple[str, ...] = ()
    locator: dict[str, Any] | None = None
    ocr: bool = False


@dataclass
class Hit:
    """One retrieved chunk with where it comes from and how it scored."""

    chunk_id: int
    document_id: int
    collection: str
    text: str
    score: float
    title: str
    source: str
    ordinal: int
    start: int
    end: int
    page_start: int | None = None
    page_end: int | None = None
    heading_path: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    locator: dict[str, Any] | None = None
    ocr: bool = False

    @property
    def page(self) -> int | None:
        """The first page the chunk is on, if the format has pages."""
        return self.page_start


@dataclass(frozen=True)
class Collection:
    """A named set of documents embedded by one embedder."""

    id: int
    name: str
    description: str
    embedder: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class DocumentRecord:
    """A document as the catalog holds it (without its full text)."""

    id: int
    collection_id: int
    source: str
    title: str | None
    sha256: str | None
    size: int | None
    mtime: float | None
    status: str
    error: str | None
    warnings: list[str]
    metadata: dict[str, Any]
    pages: int | None
    created_at: float
    updated_at: float
    chunk_count: int = 0
    ocr_pages: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class DocumentFields:
    """What the pipeline knows about a file when it commits it."""

    source: str
    sha256: str
    size: int
    mtime: float | None = None
    title: str | None = None
    metadata: dict[str, Any] | None = None
    pages: int | None = None
    warnings: Sequence[str] = ()
    text: str | None = None
    ocr_pages: Sequence[int] = ()
