"""XLSX parser: one heading per sheet, then each row with its header, numbered as in the sheet.

The workbook is streamed (openpyxl's read-only mode), with the values Excel last calculated (a formula written
by a program that never calculated it has none, and reads as empty). Hidden sheets are skipped, with a warning
naming them: they hold a workbook's lookups and scratch work rather than what it is meant to say.
"""

from __future__ import annotations

import io

import openpyxl

from indexes.errors import DocQAError, ParseError

from .archive import check_zip_bomb
from .base import DocumentBuilder, ParsedDocument, squash
from .sheets import SheetReader
from .tables import cell_text


def _value(cell) -> object:
    """A cell's value; a percentage as people see it (0.25 formatted "0%" is "25%")."""
    value = cell.value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and "%" in (cell.number_format or ""):
        return cell_text(value * 100) + "%"
    return value


class XlsxParser:
    """Excel workbooks (.xlsx, and .xlsm without running its macros): `unit="sheet"`."""

    name = "Excel (XLSX)"
    suffixes = (".xlsx", ".xlsm")

    def parse(self, data: bytes, name: str) -> ParsedDocument:
        """Check the package's sizes, then stream each visible sheet's rows."""
        check_zip_bomb(data, "XLSX")
        builder = DocumentBuilder()
        reader = SheetReader(builder, "XLSX")
        sheets = 0
        try:
            book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            try:
                for sheet in book.worksheets:
                    if sheet.sheet_state != "visible":
                        builder.warnings.append(f"hidden sheet {sheet.title!r} skipped")
                        continue
                    sheet.reset_dimensions()  # rows as stored: a stale or hostile size neither pads nor cuts them
                    reader.add(([_value(c) for c in row] for row in sheet.iter_rows()), (sheet.title,), sheet.title)
                    sheets += 1
                title = squash(book.properties.title) or None
            finally:
                book.close()
        except DocQAError:
            raise
        except Exception as e:  # a part that is missing or malformed surfaces wherever openpyxl reads it
            raise ParseError(f"invalid XLSX: {type(e).__name__}: {e}") from e
        return builder.build(title=title, pages=sheets, unit="sheet")
