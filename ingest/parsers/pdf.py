"""PDF parser (pypdf): text per page, paragraphs as sections, outline entries as heading paths.

A page whose text suggests a table is read again with pdfplumber (pdf_tables.py): each table row becomes a
section with its header, and the page's other text is pdfplumber's, from outside the tables. A page without a
text layer is OCR'd (ocr.py) when OCR is on."""

from __future__ import annotations

import io
import logging
import re
from collections import defaultdict

from pypdf import PdfReader
from pypdf.errors import DependencyError

from indexes.errors import DocQAError, ParseError

from . import ocr
from .base import DocumentBuilder, ParsedDocument
from .pdf_tables import PdfTables

# pypdf logs every repaired xref and odd object; for ingestion those are noise, not news.
logging.getLogger("pypdf").setLevel(logging.ERROR)

_MAX_OUTLINE_ENTRIES = 5000
# Fonts without a proper ToUnicode map leak control codes (even NULs) into extracted text.
_CONTROL_TO_SPACE = {code: " " for code in range(32) if chr(code) not in "\t\n\r"}
# An encrypted file names its encryption in the trailer, and its standard handler's dictionary says /Standard:
# enough to tell, when the file cannot be opened, that what failed was an encrypted file.
_ENCRYPTED = re.compile(rb"/Encrypt\b|/Filter\s*/Standard\b")

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


def _is_heading_line(line: str, title: str) -> bool:
    # Short slack for section numbers ("1.2 Metric spaces") and page numbers in running heads.
    return len(line) <= len(title) + 12 and title in line


def _title(item: object) -> str:
    return " ".join(str(getattr(item, "title", "") or "").split())


class PdfParser:
    """PDF via pypdf: never raises anything but ParseError."""

    name = "PDF"
    suffixes = (".pdf",)

    def parse(self, data: bytes, name: str) -> ParsedDocument:
        """Open, decrypt with the empty password if needed, extract page by page."""
        try:
            return self._parse(data)
        except DocQAError:  # a ParseError, or a limit the OCR hook enforces
            raise
        except RecursionError as e:
            raise ParseError("invalid PDF: objects nested too deeply") from e
        except Exception as e:
            raise ParseError(_failure(e, data)) from e

    def _parse(self, data: bytes) -> ParsedDocument:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            self._decrypt(reader)
        page_count = len(reader.pages)
        outline = _outline_by_page(reader)
        builder = DocumentBuilder()
        scans = ocr.PdfScans(data, page_count) if ocr.options().active else None
        path: tuple[str, ...] = ()
        with PdfTables(data) as tables:
            for index in range(page_count):
                text = self._page_text(reader, index, builder)
                scanned = scans is not None and text is not None and not text.strip()
                if scanned:
                    text = scans.read(index, builder.warnings)
                if text is not None and not text.strip():
                    builder.warnings.append(f"page {index + 1} has no extractable text; scanned?")
                found = None if scanned else tables.page(index, text or "", builder.warnings)
                text = found.text if found else text or ""
                path = self._add_page(builder, text, index + 1, outline.get(index, []), path, scanned)
                for table in found.tables if found else ():
                    builder.add_table(table.rows, index + 1, path, header_rows=table.header_rows)
        if not builder.sections:
            raise ParseError("no extractable text on any page; scanned?")
        title = self._metadata_title(reader) or self._first_outline_title(outline)
        return builder.build(title=title, pages=page_count)

    @staticmethod
    def _add_page(
        builder: DocumentBuilder, text: str, page: int, pending: list[OutlineEntry], path: tuple[str, ...],
        scanned: bool = False,
    ) -> tuple[str, ...]:
        """Add a page's paragraphs, starting a new section where the next outline title begins a line."""
        block: list[str] = []
        found = 0

        def flush() -> None:
            builder.add("\n".join(block), page=page, heading_path=path, ocr=scanned)
            block.clear()

        for line in text.split("\n"):
            if found < len(pending) and _is_heading_line(_norm(line), pending[found][1]):
                flush()
                path = pending[found][0]
                found += 1
            if line.strip():
                block.append(line.rstrip())
            else:
                flush()
        flush()
        # Titles never seen in the text (drawn as images, split across lines) apply from the next page.
        return pending[-1][0] if found < len(pending) else path

    @staticmethod
    def _decrypt(reader: PdfReader) -> None:
        """Open with the empty password (the only one docqa knows); keys too short to check are a corrupt file."""
        if not reader.decrypt(""):
            raise ParseError(_short_keys(reader) or "encrypted: password required")

    @staticmethod
    def _page_text(reader: PdfReader, index: int, builder: DocumentBuilder) -> str | None:
        try:
            text = reader.pages[index].extract_text()
        except DependencyError:
            raise  # a cipher this install cannot decrypt fails every page alike: the file's error, not a page's
        except Exception as e:  # RecursionError included: one bad page must not sink the file
            builder.warnings.append(f"page {index + 1} could not be read: {str(e)[:200]}")
            return None
        return (text or "").replace("\r\n", "\n").replace("\r", "\n").translate(_CONTROL_TO_SPACE)

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


def _failure(exc: Exception, data: bytes) -> str:
    """Why a PDF could not be read; for an encrypted one, an unsupported cipher or a corrupt file."""
    if not _ENCRYPTED.search(data):
        return f"invalid PDF: {exc}"
    if isinstance(exc, (DependencyError, NotImplementedError)):  # pypdf's words for a cipher it cannot run
        return f"encrypted: unsupported cipher: {exc}"
    return f"encrypted: corrupt file: {exc}"


def _short_keys(reader: PdfReader) -> str | None:
    """A failed password check on /O or /U keys shorter than the standard's (32 bytes, 48 from revision 5)."""
    encryption = reader.trailer["/Encrypt"].get_object()
    size = 48 if encryption.get("/R", 0) >= 5 else 32
    short = [key for key in ("/O", "/U") if len(getattr(encryption.get(key), "original_bytes", b"")) < size]
    return f"encrypted: corrupt file: {' and '.join(short)} shorter than {size} bytes" if short else None
