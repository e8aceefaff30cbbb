"""The few records that cross package lines: chunks going in, hits coming out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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

    @property
    def page(self) -> int | None:
        """The first page the chunk is on, if the format has pages."""
        return self.page_start
