"""What every parser yields: a document's text and its sections, with their locators and heading paths."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import Iterable, Protocol, Sequence

from indexes.locators import UNITS


def squash(text: str | None) -> str:
    """Text with every run of whitespace (newlines included) as one space, trimmed; None reads as ""."""
    return " ".join((text or "").split())


@dataclass(frozen=True)
class Section:
    """A run of text with its place in the document.

    `text == ParsedDocument.text[start:end]` always holds. `page` is the number of the document's unit the
    section is on (a PDF's page, a deck's slide, a book's chapter: `ParsedDocument.unit` says which); a sheet's
    rows carry the sheet's name and their 1-based row numbers instead. `ocr` marks text read from an image.
    """

    text: str
    start: int
    end: int
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    sheet: str | None = None
    rows: tuple[int, int] | None = None
    ocr: bool = False


@dataclass
class ParsedDocument:
    """A parser's output: the full extracted text and its sections in reading order.

    `unit` names what `Section.page` counts ("page", "slide", "chapter"; "sheet" for spreadsheets, whose
    sections carry sheet and rows). `ocr_pages` lists the pages whose text came from OCR.
    `attachments` are files inside this one (an e-mail's) that are ingested as documents of their own.
    """

    text: str
    sections: list[Section]
    title: str | None = None
    pages: int | None = None
    warnings: list[str] = field(default_factory=list)
    unit: str = "page"
    ocr_pages: list[int] = field(default_factory=list)
    metadata: dict[str, object] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {sorted(UNITS)}, got {self.unit!r}")


@dataclass(frozen=True)
class Attachment:
    """A file carried inside another (an e-mail attachment): its name and bytes."""

    name: str
    data: bytes


class Parser(Protocol):
    """Turns one file's bytes into a ParsedDocument, or raises ParseError with a reason.

    A parser whose documents carry `metadata` read from the file may list its keys as `metadata_keys`: the
    pipeline then judges a file unchanged by its bytes and the metadata it was given, not by those keys.
    """

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

    def add(
        self,
        text: str,
        page: int | None = None,
        heading_path: Sequence[str] = (),
        *,
        sheet: str | None = None,
        rows: tuple[int, int] | None = None,
        ocr: bool = False,
    ) -> None:
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
        self.sections.append(Section(text, start, self._length, page, tuple(heading_path), sheet, rows, ocr))

    def add_table(
        self,
        rows: Iterable[Sequence[object]],
        page: int | None = None,
        heading_path: Sequence[str] = (),
        *,
        sheet: str | None = None,
        first_row: int = 1,
        header_rows: int = 1,
        numbered: bool = False,
        ocr: bool = False,
    ) -> None:
        """Add a table a row at a time, each row with its header (see tables.row_text) so a cell reads alone.

        The first `header_rows` rows are the header; `first_row` is the number of the first row in its sheet, so
        a sheet's rows keep their own numbers in citations (an empty row is skipped but counted). Rows are
        numbered in a named sheet, or with `numbered` (a CSV's one sheet has no name); a page's table's are not.
        `rows` may be a generator: a sheet streams through without being held. A table of header rows only is
        added as plain rows, so no text is lost.
        """
        from .tables import header_names, row_text

        rows = iter(rows)
        head = list(islice(rows, header_rows))
        header = header_names(head) if header_rows else []

        def put(text: str, i: int) -> None:
            number = (i, i) if sheet is not None or numbered else None
            self.add(text, page, heading_path, sheet=sheet, rows=number, ocr=ocr)

        body = 0
        for body, cells in enumerate(rows, start=1):
            put(row_text(header, cells), first_row + header_rows + body - 1)
        for i, cells in enumerate(head if not body else (), start=first_row):
            put(row_text((), cells), i)

    def build(self, title: str | None = None, pages: int | None = None, unit: str = "page") -> ParsedDocument:
        """Return the finished document."""
        ocr_pages = sorted({s.page for s in self.sections if s.ocr and s.page is not None})
        return ParsedDocument("".join(self._parts), self.sections, title, pages, self.warnings, unit, ocr_pages)
