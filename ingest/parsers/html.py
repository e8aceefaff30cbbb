"""HTML parser: main content only, headings as paths, one section per block element."""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

from .base import DocumentBuilder, ParsedDocument
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


def _declared_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


def _squash(text: str | None) -> str:
    return " ".join((text or "").split())


class _SectionWalker:
    """Walks the tree without recursion (deep nesting must not overflow the stack)."""

    def __init__(self) -> None:
        self.builder = DocumentBuilder()
        self.headings = HeadingPath()
        self._inline: list[str] = []

    def flush(self) -> None:
        """Emit the inline text gathered since the last block boundary."""
        self.builder.add(_squash("".join(self._inline)), heading_path=self.headings.path)
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
            self.headings.enter(_HEADINGS[tag], _squash(node.text(deep=True)))
            return False
        if tag == "tr":
            self.flush()
            cells = [_squash(cell.text(deep=True)) for cell in node.iter() if cell.tag in ("td", "th")]
            self.builder.add(" | ".join(c for c in cells if c), heading_path=self.headings.path)
            return False
        if tag == "pre":
            self.flush()
            self.builder.add(node.text(deep=True), heading_path=self.headings.path)
            return False
        return True


class HtmlParser:
    """HTML: drops page chrome, prefers <main>/<article>, keeps headings as paths."""

    name = "HTML"
    suffixes = (".html", ".htm")

    def parse(self, data: bytes, name: str) -> ParsedDocument:
        """Decode, parse with lexbor, walk the content root."""
        tree = LexborHTMLParser(decode_text(data, declared=_declared_charset(data)))
        title = self._title(tree)  # before walking: the first h1 may sit in a dropped <header>
        root = tree.css_first("main") or tree.css_first("article") or tree.body or tree.root
        walker = _SectionWalker()
        if root is not None:
            walker.walk(root)
            walker.flush()
        return walker.builder.build(title=title)

    @staticmethod
    def _title(tree: LexborHTMLParser) -> str | None:
        for selector in ("title", "h1"):
            node = tree.css_first(selector)
            if node is not None and _squash(node.text(deep=True)):
                return _squash(node.text(deep=True))
        return None
