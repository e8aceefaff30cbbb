"""CSV and TSV parser: one sheet without a name, each row with its header, numbered as in the file (the header is
row 1 of a file that starts with it).

Text is decoded as plain text is (UTF-8, else detected: a Latin-1 export reads right). A .csv's dialect is
sniffed from its start (comma, semicolon, tab or bar), falling back to Excel's comma; a .tsv is tab-separated.
csv.Sniffer.has_header is not asked: it votes by column types, so it calls a header over text columns none;
sheets.SheetReader takes the first row as the header unless it holds no text.
"""

from __future__ import annotations

import csv
import io

from indexes.errors import ParseError

from .base import DocumentBuilder, ParsedDocument
from .sheets import SheetReader
from .text import decode_text

_DELIMITERS = ",;\t|"
_SAMPLE_CHARS = 4096  # csv.Sniffer's quote pattern is quadratic: 4 K characters cost at worst ~0.1 s, 16 K ~2.5 s


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    sample = text[:_SAMPLE_CHARS]
    if len(text) > len(sample) and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # whole lines only: a cut line skews the counts
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        return csv.excel


class DelimitedParser:
    """Comma- (or semicolon-, bar-) separated .csv and tab-separated .tsv files: `unit="sheet"`, no sheet name."""

    name = "CSV and TSV"
    suffixes = (".csv", ".tsv")

    def parse(self, data: bytes, name: str) -> ParsedDocument:
        """Decode, pick the dialect, stream the rows."""
        text = decode_text(data)
        dialect = csv.excel_tab if name.lower().endswith(".tsv") else _dialect(text)
        builder = DocumentBuilder()
        reader = csv.reader(io.StringIO(text), dialect)
        try:
            SheetReader(builder, "CSV").add(reader)
        except csv.Error as e:
            raise ParseError(f"invalid CSV: {e} (line {reader.line_num})") from e
        return builder.build(unit="sheet")
