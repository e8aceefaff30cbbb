"""PPTX parser: one unit per slide; its title as the heading, text in reading order, tables a row at a time with
their header, then the speaker notes under "Notes".

Shapes are read top to bottom, then left to right (groups recursed, their children in the same order), since
the order shapes were drawn in is not the order people read them. Hidden slides are read too: slide numbers
count them, as PowerPoint's do.
"""

from __future__ import annotations

import io
from typing import Iterable, Iterator

from pptx import Presentation
from pptx.opc.constants import RELATIONSHIP_TYPE as RT
from pptx.shapes.base import BaseShape
from pptx.shapes.group import GroupShape

from indexes.errors import ParseError

from .archive import check_zip_bomb
from .base import DocumentBuilder, ParsedDocument, squash

NOTES = "Notes"



def _reading_order(shapes: Iterable[BaseShape]) -> Iterator[BaseShape]:
    """Leaf shapes top to bottom, then left to right; a group's children in the same order, where the group is."""
    for shape in sorted(shapes, key=lambda s: (s.top or 0, s.left or 0)):
        if isinstance(shape, GroupShape):
            yield from _reading_order(shape.shapes)
        else:
            yield shape


def _table_rows(shape) -> list[list[str]]:
    """A table's cells as text; a cell covered by a merge is empty (its text is the merge's first cell's)."""
    return [[("" if cell.is_spanned else squash(cell.text)) for cell in row.cells] for row in shape.table.rows]


def _core_title(deck) -> str | None:
    """The deck's title property; python-pptx invents "PowerPoint Presentation" where the part is missing."""
    try:
        core = deck.part.package.part_related_by(RT.CORE_PROPERTIES)
    except KeyError:
        return None
    return squash(core.title or "") or None


class PptxParser:
    """PowerPoint decks (.pptx): `unit="slide"`, each section on the slide it comes from."""

    name = "PowerPoint (PPTX)"
    suffixes = (".pptx",)

    def parse(self, data: bytes, name: str) -> ParsedDocument:
        """Check the package's sizes, then read each slide's shapes and notes."""
        check_zip_bomb(data, "PPTX")
        builder = DocumentBuilder()
        try:
            deck = Presentation(io.BytesIO(data))
            titles = [self._slide(slide, number, builder) for number, slide in enumerate(deck.slides, start=1)]
            title = _core_title(deck) or next((t for t in titles if t), None)
        except Exception as e:  # a part that is missing or malformed surfaces wherever python-pptx reads it
            raise ParseError(f"invalid PPTX: {type(e).__name__}: {e}") from e
        return builder.build(title=title, pages=len(titles), unit="slide")

    @staticmethod
    def _slide(slide, number: int, builder: DocumentBuilder) -> str | None:
        """Add one slide's text, tables and notes (a slide with nothing but a title: the title); return its title."""
        title_shape = slide.shapes.title
        title = squash(title_shape.text_frame.text) if title_shape is not None else ""
        path = (title,) if title else ()
        before = len(builder.sections)
        for shape in _reading_order(slide.shapes):
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            if shape.has_table:
                rows = _table_rows(shape)
                if rows:
                    builder.add_table(rows, number, path)
            elif shape.has_text_frame:
                for paragraph in shape.text_frame.paragraphs:
                    builder.add(squash(paragraph.text), number, path)
        if len(builder.sections) == before:  # a title-only slide (a divider) still says something
            builder.add(title, number, path)
        if slide.has_notes_slide and (notes := slide.notes_slide.notes_text_frame) is not None:
            for paragraph in notes.paragraphs:
                builder.add(squash(paragraph.text), number, (*path, NOTES))
        return title or None
