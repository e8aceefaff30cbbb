"""Spreadsheet-shaped sources (XLSX sheets, CSV files) into sections: captions, the header, then a section per row.

A sheet's rows stream through: one is held at a time (besides the few looked at to find the header), so a
million-row sheet costs its text, not its cells, and a file past MAX_CELLS filled cells is refused.
"""

from __future__ import annotations

from itertools import chain
from typing import Iterable, Iterator, Sequence

from indexes.errors import LimitExceeded

from .base import DocumentBuilder
from .tables import row_text

MAX_CELLS = 1_000_000
"""Filled cells one file may hold: about the default text limit's 20 M characters once rendered with headers."""

_LOOKAHEAD = 10  # rows with one cell read before the header is settled: titles and notes above a table

Row = Sequence[object]


def _filled(cells: Row) -> int:
    return sum(1 for c in cells if c is not None and (not isinstance(c, str) or c.strip()))


def _is_text(value: object) -> bool:
    """A cell that names rather than counts: a string that is no number (a header "2024" counts as a number)."""
    if not isinstance(value, str) or not value.strip():
        return False
    try:
        float(value.replace(",", ""))
    except ValueError:
        return True
    return False


class SheetReader:
    """Adds one file's sheets to a builder, within one bound on the cells the file may hold.

    The header is the first row with two or more filled cells (the first filled row when none of the first few
    has), unless it holds no text at all, as a table of bare numbers does: then no row is a header. One-cell
    rows above it (a title, a note) are added as text. Each row keeps its number in the file.
    """

    def __init__(self, builder: DocumentBuilder, kind: str) -> None:
        self._builder = builder
        self._kind = kind
        self._max_cells = MAX_CELLS
        self._left = MAX_CELLS

    def add(self, rows: Iterable[Row], heading_path: Sequence[str] = (), sheet: str | None = None) -> None:
        """Add a sheet whose rows are `rows` in order, the first being row 1."""
        numbered = self._bounded(enumerate(rows, start=1))
        head: list[tuple[int, Row]] = []
        for number, cells in numbered:
            if filled := _filled(cells):
                head.append((number, cells))
                if filled > 1 or len(head) == _LOOKAHEAD:
                    break
        if not head:
            return
        at = next((i for i, (_, cells) in enumerate(head) if _filled(cells) > 1), 0)
        for number, cells in head[:at]:
            self._builder.add(row_text([], cells), heading_path=heading_path, sheet=sheet, rows=(number, number))
        first, header = head[at]
        table = chain([header], self._consecutive(first, chain(head[at + 1 :], numbered)))
        header_rows = 1 if any(_is_text(c) for c in header) else 0
        self._builder.add_table(
            table, heading_path=heading_path, sheet=sheet, first_row=first, header_rows=header_rows, numbered=True
        )

    def _bounded(self, rows: Iterable[tuple[int, Row]]) -> Iterator[tuple[int, Row]]:
        for number, cells in rows:
            self._left -= _filled(cells)
            if self._left < 0:
                raise LimitExceeded(f"{self._kind} has more than {self._max_cells} filled cells (the limit)")
            yield number, cells

    @staticmethod
    def _consecutive(after: int, rows: Iterable[tuple[int, Row]]) -> Iterator[Row]:
        """The rows after row `after`, with the empty ones the look-ahead skipped put back, so numbers stay true."""
        expected = after + 1
        for number, cells in rows:
            while expected < number:
                yield ()
                expected += 1
            yield cells
            expected += 1
