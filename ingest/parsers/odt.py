"""ODT parser: the package's content.xml read as XML, headings by outline level, paragraphs, lists and tables.

Plain XML rather than odfpy: the zip guard (archive.py) opens the package once and defusedxml reads the two
members needed (content.xml, meta.xml); odfpy would inflate and parse every member again and still leave the
body to walk by hand, so it would add a dependency and save nothing.
"""

from __future__ import annotations

import zipfile
from xml.etree.ElementTree import Element

from indexes.errors import LimitExceeded

from .archive import check_zip_bomb, xml_member
from .base import DocumentBuilder, ParsedDocument, squash
from .markdown import HeadingPath
from .sheets import MAX_CELLS

_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
# Blocks whose children are blocks; anything else at block level (tracked deletions, the table of contents'
# copy of the headings, forms, declarations) is not the document's text.
_CONTAINERS = frozenset({_TEXT + "list", _TEXT + "list-item", _TEXT + "list-header", _TEXT + "section"})
_SKIPPED_INLINE = frozenset({_TEXT + "note-citation", _OFFICE + "annotation", _TEXT + "tracked-changes"})
_BREAKS = frozenset({_TEXT + "s", _TEXT + "tab", _TEXT + "line-break", _TEXT + "p", _TEXT + "h"})
MAX_COLUMNS = 1024  # a row's "repeat this empty cell 16384 times" stops here
MAX_EXPANDED_ROWS = 10_000  # repeated rows are spelled out until a table has this many
MAX_CELL_CHARS = 20_000_000
"""Characters one file's table cells may hold once repeats are spelled out: the default text limit."""


def _text(element: Element) -> str:
    """An element's text with spans, links and notes inlined, space for text:s, tabs, breaks and paragraphs
    (without recursion: nesting depth is the file's to choose)."""
    parts: list[str] = []
    stack: list[Element | str] = [element]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            continue
        if item.tag in _BREAKS:
            parts.append(" ")
        if item.tag in _SKIPPED_INLINE:
            continue
        parts.append(item.text or "")
        for child in reversed(item):
            if child.tail:
                stack.append(child.tail)
            stack.append(child)
    return " ".join("".join(parts).split())


def _count(element: Element, attribute: str, limit: int) -> int:
    try:
        return max(1, min(int(element.get(_TABLE + attribute, "1")), limit))
    except ValueError:
        return 1


class _Cells:
    """What one file's tables may hold with repeats spelled out: MAX_CELLS filled cells of MAX_CELL_CHARS
    characters in all, counted before a repeated row is spelled out (a few hundred bytes can ask for gigabytes)."""

    def __init__(self) -> None:
        self._cells = MAX_CELLS
        self._chars = MAX_CELL_CHARS

    def take(self, cells: list[str], times: int) -> None:
        """Count `times` copies of a row of `cells`; past either bound the file is refused."""
        self._cells -= times * sum(1 for cell in cells if cell)
        self._chars -= times * sum(map(len, cells))
        if self._cells < 0:
            raise LimitExceeded(f"ODT tables hold more than {MAX_CELLS} filled cells, repeats counted (the limit)")
        if self._chars < 0:
            raise LimitExceeded(
                f"ODT tables hold more than {MAX_CELL_CHARS} characters, repeats counted (the limit)"
            )


def _table(table: Element, budget: _Cells) -> tuple[list[list[str]], int]:
    """A table's rows of cell texts (repeated cells and rows spelled out, within bounds) and its header row count."""
    rows: list[list[str]] = []
    header_rows = 0
    stack: list[tuple[Element, bool]] = [(child, False) for child in reversed(table)]
    while stack:
        element, in_header = stack.pop()
        if element.tag == _TABLE + "table-row":
            cells: list[str] = []
            for cell in element:
                if cell.tag in (_TABLE + "table-cell", _TABLE + "covered-table-cell"):
                    cells += [_text(cell)] * _count(cell, "number-columns-repeated", MAX_COLUMNS - len(cells))
            while cells and not cells[-1]:
                cells.pop()
            if cells:
                repeat = _count(element, "number-rows-repeated", MAX_EXPANDED_ROWS - len(rows))
                budget.take(cells, repeat)
                rows += [cells] * repeat
                header_rows += repeat if in_header else 0
        elif element.tag in (_TABLE + "table-header-rows", _TABLE + "table-rows", _TABLE + "table-row-group"):
            header = in_header or element.tag == _TABLE + "table-header-rows"
            stack.extend((child, header) for child in reversed(element))
    return rows, header_rows or 1  # no declared header: the first row names the columns


class OdtParser:
    """OpenDocument text (.odt): one section per paragraph, list item and table row, under its headings."""

    name = "OpenDocument text (ODT)"
    suffixes = (".odt",)

    def parse(self, data: bytes, name: str) -> ParsedDocument:
        """Check the package, read meta.xml's title, walk content.xml's body in order."""
        package = check_zip_bomb(data, "ODT")
        content = xml_member(package, "content.xml", "ODT")
        body = content.find(f"{_OFFICE}body/{_OFFICE}text")
        builder = DocumentBuilder()
        headings = HeadingPath()
        budget = _Cells()
        stack = list(reversed(body)) if body is not None else []
        while stack:
            element = stack.pop()
            if element.tag == _TEXT + "h":
                try:
                    level = max(1, int(element.get(_TEXT + "outline-level", "1")))
                except ValueError:
                    level = 1
                if text := _text(element):
                    headings.enter(level, text)
            elif element.tag == _TEXT + "p":
                builder.add(_text(element), heading_path=headings.path)
            elif element.tag == _TABLE + "table":
                rows, header_rows = _table(element, budget)
                builder.add_table(rows, heading_path=headings.path, header_rows=header_rows)
            elif element.tag in _CONTAINERS:
                stack.extend(reversed(element))
        return builder.build(title=self._title(package) or headings.first)

    @staticmethod
    def _title(package: zipfile.ZipFile) -> str | None:
        """meta.xml's dc:title; a package without meta.xml (it is optional) has none."""
        if "meta.xml" not in package.namelist():
            return None
        meta = xml_member(package, "meta.xml", "ODT")
        title = meta.findtext(f"{_OFFICE}meta/{{http://purl.org/dc/elements/1.1/}}title") or ""
        return squash(title) or None
