"""PDF parser (pypdf): text per page, paragraphs as sections, outline entries as heading paths."""

from __future__ import annotations

import io
import logging
from collections import defaultdict

from pypdf import PdfReader
from pypdf.errors import DependencyError

from indexes.errors import ParseError

from .base import DocumentBuilder, ParsedDocument
from .text import split_paragraphs

# pypdf logs every repaired xref and odd object; for ingestion those are noise, not news.
logging.getLogger("pypdf").setLevel(logging.ERROR)

_MAX_OUTLINE_ENTRIES = 5000

OutlineEntry = tuple[tuple[str, ...], str]  # (heading path, normalised title)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _outline_by_page(reader: PdfReader) -> dict[int, list[OutlineEntry]]:
    """Map 0-based page index → outline entries starting there, in outline order."""
    by_page: dict[int, list[OutlineEntry]] = defaultdict(list)
    try:
        outline = reader.outline
    except Exception:
        return by_page  # a broken outline only costs us heading paths
    # Explicit stack: outlines nest through lists, and hostile files nest them deeply.
    stack: list[tuple[list, int, tuple[str, ...]]] = [(outline, 0, ())]
    count = 0
    while stack and count < _MAX_OUTLINE_ENTRIES:
        items, index, parents = stack.pop()
        if index >= len(items):
            continue
        item = items[index]
        stack.append((items, index + 1, parents))
        if isinstance(item, list):
            # A nested list holds the children of the entry just before it.
            previous = items[index - 1] if index and not isinstance(items[index - 1], list) else None
            child_parents = parents + (_title(previous),) if previous is not None else parents
            stack.append((item, 0, child_parents))
            continue
        count += 1
        try:
            page = reader.get_destination_page_number(item)
        except Exception:
            continue
        if page is not None and page >= 0 and _title(item):
            by_page[page].append((parents + (_title(item),), _norm(_title(item))))
    return by_page


def _title(item: object) -> str:
    return " ".join(str(getattr(item, "title", "") or "").split())


class PdfParser:
    """PDF via pypdf: never raises anything but ParseError."""

    suffixes = (".pdf",)

    def parse(self, data: bytes, name: str) -> ParsedDocument:
        """Open, decrypt with the empty password if needed, extract page by page."""
        try:
            return self._parse(data)
        except ParseError:
            raise
        except RecursionError as e:
            raise ParseError("invalid PDF: objects nested too deeply") from e
        except Exception as e:
            raise ParseError(f"invalid PDF: {e}") from e

    def _parse(self, data: bytes) -> ParsedDocument:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            self._decrypt(reader)
        page_count = len(reader.pages)
        outline = _outline_by_page(reader)
        builder = DocumentBuilder()
        path: tuple[str, ...] = ()
        for index in range(page_count):
            text = self._page_text(reader, index, builder)
            pending, found = outline.get(index, []), 0
            for paragraph in split_paragraphs(text or ""):
                # An outline entry takes effect at the paragraph that shows its title.
                while found < len(pending) and pending[found][1] in _norm(paragraph):
                    path = pending[found][0]
                    found += 1
                builder.add(paragraph, page=index + 1, heading_path=path)
            if found < len(pending):
                path = pending[-1][0]  # titles not found in the text start from the next page
        if not builder.sections:
            raise ParseError("no extractable text on any page; scanned?")
        title = self._metadata_title(reader) or self._first_outline_title(outline)
        return builder.build(title=title, pages=page_count)

    @staticmethod
    def _decrypt(reader: PdfReader) -> None:
        try:
            ok = reader.decrypt("")
        except DependencyError as e:
            raise ParseError(f"encrypted: {e}") from e
        except Exception:
            ok = 0
        if not ok:
            raise ParseError("encrypted: password required")

    @staticmethod
    def _page_text(reader: PdfReader, index: int, builder: DocumentBuilder) -> str | None:
        try:
            text = reader.pages[index].extract_text()
        except Exception as e:  # RecursionError included: one bad page must not sink the file
            builder.warnings.append(f"page {index + 1} could not be read: {str(e)[:200]}")
            return None
        text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
        if not text.strip():
            builder.warnings.append(f"page {index + 1} has no extractable text; scanned?")
        return text

    @staticmethod
    def _metadata_title(reader: PdfReader) -> str | None:
        try:
            title = reader.metadata.title if reader.metadata else None
        except Exception:
            return None
        return " ".join(str(title or "").split()) or None

    @staticmethod
    def _first_outline_title(outline: dict[int, list[OutlineEntry]]) -> str | None:
        first_page = min(outline, default=None)
        return outline[first_page][0][0][-1] if first_page is not None else None
