"""Tables on PDF pages, read from the words' layout (pdfplumber): rows of numbers under their header.

pdfplumber's own table finder was measured on the shared PDFs (docs/quality.md, "Tables") and not used: its
text strategy cuts words at column edges ("State / Territory P" | "ermit") and its lines strategy needs every
row ruled (the NICS table rules every fifth; budget.pdf has no column rules). Here a table is a run of lines
holding numbers; its columns are the x-ranges those lines' phrases cover; its header is the lines set tight
above it (three at most); a label over several columns ("Plan" over Revenue, Capital, Total) spans the columns
inside its ruled cell or under the rule drawn beneath it. Tables without numbers or a header are left to the
page's text.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from statistics import median

# A cell that is a figure: 1,178 · (4.2) · -3% · $12 · 98452 · and the "nil" marks ... … - –.
_NUMBER = re.compile(r"^[(+\-–−]?[$€£₹]?\d[\d,.]*%?\)?$|^(\.{2,}|…|-|–|—)$")
MIN_SIGNAL = 6  # figures in a page's text before it is worth a look
MIN_ROWS = 3  # lines of figures before a run of them is a table
MIN_FIGURES = 2  # figures on a line for it to be a table row; they must also be half its phrases
MIN_COLUMNS = 3
MIN_FILLED = 0.6  # two columns at least must hold a figure in this share of the rows (a figure column)
MAX_HEADER_LINES = 3
_MAX_TEXT_GAP = 2  # lines without figures a table may hold between two with (a section's name row)


def _figures(words: list[str]) -> int:
    return sum(1 for w in words if _NUMBER.match(w))


def looks_tabular(text: str) -> bool:
    """The cheap signal: MIN_SIGNAL figures of two characters or more (lone digits are a formula's indices) on
    lines of a page's text that are 40% figures or more and follow or precede another such line.

    pypdf writes a table's row on one line (budget.pdf) or each cell on a line of its own (reportlab's), so
    such lines come in runs either way; a figure alone in prose (an equation's number) stands alone.
    """
    counts = []
    for line in text.splitlines():
        words = line.split()
        long = sum(1 for w in words if len(w) > 1 and _NUMBER.match(w))
        counts.append(long if long and _figures(words) >= 0.4 * len(words) else 0)
    def dense(i: int) -> bool:
        return 0 <= i < len(counts) and counts[i] > 0

    return sum(n for i, n in enumerate(counts) if n and (dense(i - 1) or dense(i + 1))) >= MIN_SIGNAL


@dataclass(frozen=True)
class Table:
    """One table: its rows (header rows first), how many are header, and the region it covers on the page."""

    rows: list[list[str]]
    header_rows: int
    bbox: tuple[float, float, float, float]


@dataclass
class _Phrase:
    """Words set close together on one line: one cell's text."""

    text: str
    x0: float
    x1: float
    top: float
    bottom: float

    @property
    def height(self) -> float:
        return self.bottom - self.top


def _lines(words: list[dict]) -> list[list[_Phrase]]:
    """Words grouped into lines (tops within 40% of a word's height), each line's words into phrases."""
    lines: list[list[dict]] = []
    for word in sorted(words, key=lambda w: (w["top"], w["x0"])):
        height = word["bottom"] - word["top"]
        if lines and abs(word["top"] - lines[-1][0]["top"]) <= 0.4 * height:
            lines[-1].append(word)
        else:
            lines.append([word])
    return [_phrases(sorted(line, key=lambda w: w["x0"])) for line in lines]


def _phrases(words: list[dict]) -> list[_Phrase]:
    phrases: list[_Phrase] = []
    for w in words:
        last = phrases[-1] if phrases else None
        if last is not None and w["x0"] - last.x1 <= 0.5 * (w["bottom"] - w["top"]):
            last.text += " " + w["text"]
            last.x1, last.top, last.bottom = w["x1"], min(last.top, w["top"]), max(last.bottom, w["bottom"])
        else:
            phrases.append(_Phrase(w["text"], w["x0"], w["x1"], w["top"], w["bottom"]))
    return phrases


def _is_row(line: list[_Phrase]) -> bool:
    figures = _figures([p.text for p in line])
    return figures >= MIN_FIGURES and 2 * figures >= len(line)


def _runs(lines: list[list[_Phrase]]) -> list[tuple[int, int]]:
    """(first, last) line indices of each run of rows with figures, at most _MAX_TEXT_GAP other lines between."""
    runs, start, last = [], None, None
    for i, line in enumerate(lines):
        if not _is_row(line):
            continue
        if start is not None and i - last - 1 > _MAX_TEXT_GAP:
            runs.append((start, last))
            start = None
        start, last = (i if start is None else start), i
    if start is not None:
        runs.append((start, last))
    return [(a, b) for a, b in runs if sum(_is_row(line) for line in lines[a : b + 1]) >= MIN_ROWS]


def _columns(rows: list[list[_Phrase]]) -> list[tuple[float, float]]:
    """The x-ranges that the rows' phrases cover, overlapping ranges merged: one per column."""
    spans = sorted((p.x0, p.x1) for line in rows for p in line)
    columns: list[list[float]] = []
    for x0, x1 in spans:
        if columns and x0 <= columns[-1][1] + 1:
            columns[-1][1] = max(columns[-1][1], x1)
        else:
            columns.append([x0, x1])
    return [(a, b) for a, b in columns]


def _figure_columns(rows: list[list[_Phrase]], columns: list[tuple[float, float]]) -> int:
    """How many columns hold a figure in at least MIN_FILLED of the rows."""
    filled = [0] * len(columns)
    for line in rows:
        for i in {_nearest(columns, p.x0, p.x1) for p in line if _NUMBER.match(p.text)}:
            filled[i] += 1
    return sum(1 for n in filled if n >= MIN_FILLED * len(rows))


def _nearest(columns: list[tuple[float, float]], x0: float, x1: float) -> int:
    """The column a phrase belongs to: the one it overlaps most, else the closest."""
    def distance(column: tuple[float, float]) -> tuple[float, float]:
        overlap = min(x1, column[1]) - max(x0, column[0])
        return (max(0.0, -overlap), -overlap)

    return min(range(len(columns)), key=lambda i: distance(columns[i]))


class _Rules:
    """The page's ruling lines, to tell how far a header label over several columns reaches."""

    def __init__(self, edges: list[dict]) -> None:
        self.vertical = [e for e in edges if e["orientation"] == "v"]
        self.horizontal = sorted(
            (e for e in edges if e["orientation"] == "h"), key=lambda e: (round(e["top"]), e["x0"])
        )

    def span(self, phrase: _Phrase, left: float, right: float) -> tuple[float, float]:
        """The widest of: the phrase itself, the ruled cell around it, the rule just beneath it.

        One rule may run beneath several labels, so it counts only between `left` and `right` (the midpoints
        to the labels beside this one).
        """
        rule = self._rule_below(phrase)
        rule = (max(rule[0], left), min(rule[1], right)) if rule else None
        candidates = [(phrase.x0, phrase.x1), self._cell(phrase), rule]
        return max((c for c in candidates if c is not None), key=lambda c: c[1] - c[0])

    def across(self, top: float, bottom: float, x0: float, x1: float) -> bool:
        """Whether a horizontal rule between `top` and `bottom` runs under 80% of x0..x1 or more."""
        covered: dict[float, float] = {}
        for e in self.horizontal:
            if top - 1 <= e["top"] <= bottom + 1:  # a rule drawn at a line's very bottom still parts it
                key = round(e["top"])
                covered[key] = covered.get(key, 0.0) + max(0.0, min(e["x1"], x1) - max(e["x0"], x0))
        return any(length >= 0.8 * (x1 - x0) for length in covered.values())

    def _cell(self, phrase: _Phrase) -> tuple[float, float] | None:
        middle = (phrase.top + phrase.bottom) / 2
        crossing = [e["x0"] for e in self.vertical if e["top"] <= middle <= e["bottom"]]
        left = [x for x in crossing if x <= phrase.x0]
        right = [x for x in crossing if x >= phrase.x1]
        return (max(left), min(right)) if left and right else None

    def _rule_below(self, phrase: _Phrase) -> tuple[float, float] | None:
        centre = (phrase.x0 + phrase.x1) / 2
        near = [e for e in self.horizontal if phrase.bottom <= e["top"] <= phrase.bottom + 1.5 * phrase.height]
        segment: list[float] | None = None
        for e in near:  # contiguous pieces of one rule, at one height, joined
            if segment and abs(e["top"] - segment[2]) <= 0.5 and e["x0"] <= segment[1] + 1.5:
                segment[1] = max(segment[1], e["x1"])
            else:
                if segment and segment[0] <= centre <= segment[1]:
                    break
                segment = [e["x0"], e["x1"], e["top"]]
        return (segment[0], segment[1]) if segment and segment[0] <= centre <= segment[1] else None


def _header_lines(lines: list[list[_Phrase]], first: int, columns, body_height: float, rules: _Rules) -> int:
    """How many lines above line `first` are its header (MAX_HEADER_LINES at most): no titles (larger type, or
    a phrase over most columns), set tight, and no rule across the table between one header line and the next.
    """
    count = 0
    below = None
    width = (columns[0][0], columns[-1][1])
    for line in reversed(lines[max(0, first - MAX_HEADER_LINES) : first]):
        top, bottom = min(p.top for p in line), max(p.bottom for p in line)
        height = max(p.height for p in line)
        wide = any(len(_covered(columns, p.x0, p.x1)) > max(2, len(columns) // 2) for p in line)
        if wide or height > 1.3 * body_height or _is_row(line):
            break
        if below is not None and (below - bottom > 0.8 * height or rules.across(bottom, below, *width)):
            break
        count, below = count + 1, top
    return count


def _covered(columns: list[tuple[float, float]], x0: float, x1: float) -> list[int]:
    return [i for i, (a, b) in enumerate(columns) if a < x1 and b > x0]


def _grid(line: list[_Phrase], columns, rules: _Rules | None) -> list[str]:
    """One line's cells; with `rules` (a header line above another) a label fills every column it spans."""
    cells: list[list[str]] = [[] for _ in columns]
    edges = [p.x1 for p in line[:-1]]
    for i, phrase in enumerate(line):
        left = (edges[i - 1] + phrase.x0) / 2 if i else float("-inf")
        right = (phrase.x1 + line[i + 1].x0) / 2 if i + 1 < len(line) else float("inf")
        span = _covered(columns, *rules.span(phrase, left, right)) if rules is not None else []
        for i in span or [_nearest(columns, phrase.x0, phrase.x1)]:
            cells[i].append(phrase.text)
    return [" ".join(c) for c in cells]


def find_tables(page) -> list[Table]:
    """Tables on one pdfplumber page, top to bottom."""
    lines = _lines(page.extract_words())
    rules = None
    tables = []
    for first, last in _runs(lines):
        rows = [line for line in lines[first : last + 1] if _is_row(line)]
        columns = _columns(rows)
        if len(columns) < MIN_COLUMNS or _figure_columns(rows, columns) < 2:
            continue
        body_height = median(p.height for line in rows for p in line)
        rules = rules or _Rules(page.edges)
        headers = _header_lines(lines, first, columns, body_height, rules)
        if not headers:
            continue  # figures under no header: a formula, a list of numbers, or a table's continued rows
        grid = [_grid(line, columns, rules if i < headers - 1 else None)
                for i, line in enumerate(lines[first - headers : first])]
        grid += [_grid(line, columns, None) for line in lines[first : last + 1]]
        used = [p for line in lines[first - headers : last + 1] for p in line]
        bbox = (min(p.x0 for p in used), min(p.top for p in used), max(p.x1 for p in used),
                max(p.bottom for p in used))
        tables.append(Table(grid, headers, bbox))
    return tables


@dataclass(frozen=True)
class PageTables:
    """A page's tables and the text of the page outside them."""

    tables: list[Table]
    text: str


class PdfTables:
    """Opens the file with pdfplumber only when a page's text suggests a table; use as a context manager."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pdf = None

    def __enter__(self) -> PdfTables:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pdf is not None:
            self._pdf.close()

    def page(self, index: int, text: str, warnings: list[str]) -> PageTables | None:
        """The tables on page `index` (0-based) whose pypdf text is `text`; None when there are none.

        A page pdfplumber cannot read keeps its pypdf text, with a warning.
        """
        if not looks_tabular(text):
            return None
        try:
            if self._pdf is None:
                import pdfplumber  # on first need: pdfminer needs the cryptography package to import at all

                self._pdf = pdfplumber.open(io.BytesIO(self._data))
            page = self._pdf.pages[index]
            tables = find_tables(page)
            if not tables:
                return None
            outside = page
            for table in tables:
                outside = outside.outside_bbox(_padded(table.bbox, page.bbox))
            return PageTables(tables, outside.extract_text() or "")
        except Exception as e:  # RecursionError included: the page's pypdf text still stands
            warnings.append(f"page {index + 1}: tables could not be read: {str(e)[:200]}")
            return None


def _padded(bbox: tuple[float, float, float, float], page: tuple[float, float, float, float]):
    x0, top, x1, bottom = bbox
    return (max(page[0], x0 - 1), max(page[1], top - 1), min(page[2], x1 + 1), min(page[3], bottom + 1))
