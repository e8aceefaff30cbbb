"""DOCX parser: headings from paragraph styles, paragraphs and tables in body order."""

from __future__ import annotations

import io
import re

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from indexes.errors import ParseError

from .archive import check_zip_bomb
from .base import DocumentBuilder, ParsedDocument, squash
from .markdown import HeadingPath

_HEADING_STYLE = re.compile(r"heading\s*([1-9])$", re.IGNORECASE)

def _style_name(paragraph: Paragraph) -> str:
    try:
        style = paragraph.style
        return (style.name or "") if style is not None else ""
    except (KeyError, AttributeError, ValueError):
        return ""  # a paragraph pointing at a missing style is just a paragraph


def _table_rows(table: Table) -> list[list[str]]:
    """Each row's cells, a cell merged across columns once (at its first column, so columns stay aligned)."""
    rows = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            merged = id(cell._tc) in seen  # merged cells repeat the same <w:tc>
            seen.add(id(cell._tc))
            cells.append("" if merged else squash(cell.text))
        rows.append(cells)
    return rows


class DocxParser:
    """Word documents (.docx): one section per paragraph and per table row (the first row is the header)."""

    name = "Word (DOCX)"
    suffixes = (".docx",)

    def parse(self, data: bytes, name: str) -> ParsedDocument:
        """Check the package's sizes, then open it and walk the body's children in order."""
        check_zip_bomb(data, "DOCX")
        try:
            document = docx.Document(io.BytesIO(data))
        except Exception as e:
            raise ParseError(f"invalid DOCX: {e}") from e
        builder = DocumentBuilder()
        headings = HeadingPath()
        title = squash(document.core_properties.title or "") or None
        for child in document.element.body.iterchildren():
            if child.tag.endswith("}p"):
                title = self._paragraph(Paragraph(child, document), builder, headings, title)
            elif child.tag.endswith("}tbl"):
                builder.add_table(_table_rows(Table(child, document)), heading_path=headings.path)
        return builder.build(title=title or headings.first)

    @staticmethod
    def _paragraph(
        paragraph: Paragraph, builder: DocumentBuilder, headings: HeadingPath, title: str | None
    ) -> str | None:
        """Add one paragraph, or enter a heading; return the (maybe newly found) title."""
        text = squash(paragraph.text)
        style = _style_name(paragraph)
        level = _HEADING_STYLE.match(style)
        if text and level:
            headings.enter(int(level.group(1)), text)
        elif text and style.lower() == "title":
            title = title or text
        else:
            builder.add(text, heading_path=headings.path)
        return title
