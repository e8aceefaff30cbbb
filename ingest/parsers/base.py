"""What every parser yields: a document's text and its sections, with pages and heading paths."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence


@dataclass(frozen=True)
class Section:
    """A run of text with its place in the document.

    `text == ParsedDocument.text[start:end]` always holds.
    """

    text: str
    start: int
    end: int
    page: int | None = None
    heading_path: tuple[str, ...] = ()


@dataclass
class ParsedDocument:
    """A parser's output: the full extracted text and its sections in reading order."""

    text: str
    sections: list[Section]
    title: str | None = None
    pages: int | None = None
    warnings: list[str] = field(default_factory=list)


class Parser(Protocol):
    """Turns one file's bytes into a ParsedDocument, or raises ParseError with a reason."""

    suffixes: Sequence[str]

    def parse(self, data: bytes, name: str) -> ParsedDocument: ...


class DocumentBuilder:
    """Appends sections one by one, keeping character offsets into the joined text exact."""

    separator = "\n\n"

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self.sections: list[Section] = []
        self.warnings: list[str] = []

    def add(self, text: str, page: int | None = None, heading_path: Sequence[str] = ()) -> None:
        """Add one section; blank text is ignored."""
        text = text.strip()
        if not text:
            return
        if self._parts:
            self._parts.append(self.separator)
            self._length += len(self.separator)
        start = self._length
        self._parts.append(text)
        self._length += len(text)
        self.sections.append(Section(text, start, self._length, page, tuple(heading_path)))

    def build(self, title: str | None = None, pages: int | None = None) -> ParsedDocument:
        """Return the finished document."""
        return ParsedDocument("".join(self._parts), self.sections, title, pages, self.warnings)
