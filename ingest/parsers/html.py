"""HTML parser: main content only, headings as paths, one section per block element."""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

from .base import DocumentBuilder, ParsedDocument, squash
from .markdown import HeadingPath
from .text import decode_text

_DROPPED = frozenset(
    "script style nav header footer aside noscript form template head iframe svg button select".split()
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
# Elements that end the running line of inline text; their content starts a new section.
_BLOCKS = frozenset(
    """address article blockquote body dd details dialog div dl dt fieldset figcaption figure
    hr li main ol p pre section summary table tbody thead tfoot ul""".split()
)
# Only the head of the file is searched, so the regex cost is bounded.
_META_CHARSET = re.compile(rb"<meta[^>]{0,512}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)


# A leading DOCTYPE with an internal subset (XHTML may declare entities): lexbor would end it at the subset's
# first ">" and read the rest ("]>") as text. No nested quantifiers, and only the head is searched.
_DOCTYPE_SUBSET = re.compile(r"\A\ufeff?\s*(?:<\?xml[^>]{0,512}\?>\s*)?<!DOCTYPE[^\[>]{0,1024}\[[^\]]*\]\s*>",
                             re.IGNORECASE)


def _declared_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None



def _own(node: LexborNode, tags: frozenset[str]) -> list[LexborNode]:
    """`node`'s descendants with one of `tags`, in document order, not looking inside nested tables."""
    found, stack = [], list(reversed(list(node.iter())))
    while stack:
        child = stack.pop()
        if child.tag in tags:
            found.append(child)
        if child.tag != "table" and child.tag not in _DROPPED:
            stack.extend(reversed(list(child.iter())))
    return found


def _text_outside_tables(node: LexborNode) -> str:
    """A cell's text, without the text of tables nested in it (those are tables of their own)."""
    parts, stack = [], [node]
    while stack:
        child = stack.pop()
        if child.tag == "-text":
            parts.append(child.text_content or "")
        elif child.tag == "br":
            parts.append(" ")
        elif child is node or (child.tag != "table" and child.tag not in _DROPPED):
            stack.extend(reversed(list(child.iter(include_text=True))))
    return squash("".join(parts))


MAX_SPAN = 1000  # a colspan or rowspan past this counts as this (HTML caps colspan there too)
MAX_SPANNED = 1_000_000
"""Cells plus characters one page's spans may add (a span past it stops repeating: its text is still read once)."""


def _span(cell: LexborNode, attribute: str) -> int:
    try:
        return max(1, min(int(cell.attributes.get(attribute) or 1), MAX_SPAN))
    except ValueError:
        return 1


class _Tables:
    """Reads a page's tables into rows, honouring colspan and rowspan within one budget for the page."""

    def __init__(self) -> None:
        self._left = MAX_SPANNED

    def _take(self, cost: int) -> bool:
        """Whether `cost` more cells and characters fit the budget (taking them if so)."""
        if cost > self._left:
            return False
        self._left -= cost
        return True

    def rows(self, node: LexborNode) -> tuple[list[list[str]], int]:
        """A table's rows (nested tables left out) and how many lead as its header: the rows in <thead>, or else
        the leading rows of <th> cells only, or else the first row.

        A cell spanning rows is carried down into them. A header cell spanning columns names each of them (so
        stacked headers join as "Revenue / Q3"); a data cell spanning columns is kept once, at its first column.
        """
        rows: list[list[str]] = []
        header = 0
        below: dict[int, tuple[str, int]] = {}  # column: (text, rows still to fill) of cells spanning down
        for tr in _own(node, frozenset({"tr"})):
            cells = _own(tr, frozenset({"td", "th"}))
            in_head = tr.parent is not None and tr.parent.tag == "thead"
            all_th = bool(cells) and all(cell.tag == "th" for cell in cells)
            if header == len(rows) and (in_head or all_th):
                header += 1
            in_header = header > len(rows)
            row: list[str] = []
            for cell in cells:
                while len(row) in below:
                    row.append(below[len(row)][0])
                text = _text_outside_tables(cell)
                across, down = _span(cell, "colspan"), _span(cell, "rowspan")
                spread = text if in_header else ""
                if not self._take((across - 1) * (1 + len(spread))):
                    across = 1
                if not self._take((down - 1) * (1 + len(text) + (across - 1) * (1 + len(spread)))):
                    down = 1
                first = len(row)
                row += [text] + [spread] * (across - 1)
                if down > 1:
                    below.update((column, (row[column], down)) for column in range(first, len(row)))
            row += [below[c][0] if c in below else "" for c in range(len(row), max(below, default=-1) + 1)]
            rows.append(row)
            below = {column: (text, left - 1) for column, (text, left) in below.items() if left > 1}
        return rows, header or 1


def read_html(data: bytes, charset: str | None = None) -> LexborHTMLParser:
    """Decode (UTF-8, else `charset` or the one the page declares, else a guess) and parse with lexbor."""
    text = decode_text(data, declared=charset or _declared_charset(data))
    if doctype := _DOCTYPE_SUBSET.match(text[:65536]):
        text = text[doctype.end():]
    return LexborHTMLParser(text)


def add_content(
    builder: DocumentBuilder, tree: LexborHTMLParser, page: int | None = None, top: str | None = None
) -> None:
    """Add the sections of a page's content (<main>, else <article>, else <body>) to `builder`, on `page`.

    With `top`, every section sits under that heading and the page's own headings nest below it (a heading
    repeating `top` right under it is not repeated).
    """
    root = tree.css_first("main") or tree.css_first("article") or tree.body or tree.root
    if root is not None:
        walker = _SectionWalker(builder, page, top)
        walker.walk(root)
        walker.flush()


class _SectionWalker:
    """Walks the tree without recursion (deep nesting must not overflow the stack)."""

    def __init__(self, builder: DocumentBuilder, page: int | None, top: str | None) -> None:
        self.builder = builder
        self.page = page
        self.top = top
        self.headings = HeadingPath()
        if top:
            self.headings.enter(0, top)
        self._inline: list[str] = []
        self._nested: list[LexborNode] = []  # tables inside the table just added, to add after it
        self._tables = _Tables()

    def _add(self, text: str) -> None:
        self.builder.add(text, self.page, self.headings.path)

    def flush(self) -> None:
        """Emit the inline text gathered since the last block boundary."""
        self._add(squash("".join(self._inline)))
        self._inline.clear()

    def walk(self, root: LexborNode) -> None:
        """Visit `root`'s subtree in document order."""
        stack: list[tuple[LexborNode, bool]] = [(root, False)]
        while stack:
            node, leaving = stack.pop()
            if leaving:
                self.flush()
                continue
            if self._visit(node):
                if node.tag in _BLOCKS:
                    self.flush()
                    stack.append((node, True))
                stack.extend((child, False) for child in reversed(list(node.iter(include_text=True))))
            stack.extend((table, False) for table in reversed(self._nested))
            self._nested.clear()

    def _visit(self, node: LexborNode) -> bool:
        """Handle one node; return whether to descend into its children."""
        tag = node.tag
        if tag == "-text":
            self._inline.append(node.text_content or "")
            return False
        if tag in _DROPPED or not node.is_element_node:
            return False
        if tag == "br":
            self._inline.append(" ")
            return False
        if tag in _HEADINGS:
            self.flush()
            text = squash(node.text(deep=True))
            if not (self.top and self.headings.path == (self.top,) and text == self.top):
                self.headings.enter(_HEADINGS[tag], text)
            return False
        if tag == "table":
            self.flush()
            for caption in _own(node, frozenset({"caption"})):
                self._add(_text_outside_tables(caption))
            rows, header = self._tables.rows(node)
            self.builder.add_table(rows, self.page, self.headings.path, header_rows=header)
            self._nested.extend(_own(node, frozenset({"table"})))
            return False
        if tag == "pre":
            self.flush()
            self._add(node.text(deep=True))
            return False
        return True


class HtmlParser:
    """HTML: drops page chrome, prefers <main>/<article>, keeps headings as paths."""

    name = "HTML"
    suffixes = (".html", ".htm")

    def parse(self, data: bytes, name: str) -> ParsedDocument:
        """Decode, parse with lexbor, walk the content root."""
        tree = read_html(data)
        title = self._title(tree)  # before walking: the first h1 may sit in a dropped <header>
        builder = DocumentBuilder()
        add_content(builder, tree)
        return builder.build(title=title)

    @staticmethod
    def _title(tree: LexborHTMLParser) -> str | None:
        for selector in ("title", "h1"):
            node = tree.css_first(selector)
            if node is not None and squash(node.text(deep=True)):
                return squash(node.text(deep=True))
        return None
