"""Tables as text a retriever can use: each row written with its header, so one cell reads on its own.

A row ["North", "4.2M"] under the header ["Region", "Q3 revenue"] becomes "Region: North; Q3 revenue: 4.2M".
Every parser that meets a table (PDF, DOCX, PPTX, HTML, XLSX, CSV) renders rows here, so the same question
finds the same cell whatever format holds it.
"""

from __future__ import annotations

import datetime as dt
from typing import Sequence

from .base import squash

_SIGNIFICANT = 15  # a double holds 15-17 significant digits; 15 drops binary noise (4.2000000000000002 → 4.2)


def cell_text(value: object) -> str:
    """A spreadsheet value as people read it: 4.2 not 4.2000000000000002, 3 not 3.0, dates ISO, TRUE/FALSE."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return f"{value:.{_SIGNIFICANT}g}"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time():
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="microseconds" if value.microsecond else "seconds")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def _clean(cell: object) -> str:
    return squash(cell_text(cell))


def header_names(header_rows: Sequence[Sequence[object]]) -> list[str]:
    """One name per column from one or more header rows (stacked headers join with " / ")."""
    width = max((len(r) for r in header_rows), default=0)
    names = []
    for column in range(width):
        parts = [_clean(r[column]) for r in header_rows if column < len(r)]
        names.append(" / ".join(dict.fromkeys(p for p in parts if p)))
    return names


def row_text(header: Sequence[str], cells: Sequence[object]) -> str:
    """"Name: value; Name: value" for a row's non-empty cells; a cell without a column name stands alone.

    A row whose every cell is empty gives "" (the builder skips it).
    """
    parts = []
    for column, cell in enumerate(cells):
        value = _clean(cell)
        if not value:
            continue
        name = header[column] if column < len(header) else ""
        parts.append(f"{name}: {value}" if name and name != value else value)
    return "; ".join(parts)
