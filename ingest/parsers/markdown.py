"""Markdown parser: markdown-it-py finds the blocks (CommonMark plus tables); their source lines become sections."""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

from .base import DocumentBuilder, ParsedDocument
from .text import decode_text, split_paragraphs

_FRONT_MATTER_TITLE = re.compile(r"title[ \t]*:[ \t]*(.*)$", re.IGNORECASE)
# Block structure only: inline markup is never rendered, and a link reference definition stays text.
_BLOCKS = MarkdownIt("commonmark").enable("table").disable(["inline", "reference"])


class HeadingPath:
    """The chain of open headings; a new heading closes those at its level and below."""

    def __init__(self) -> None:
        self._open: list[tuple[int, str]] = []
        self.first: str | None = None

    def enter(self, level: int, text: str) -> None:
        """Open a heading at `level` (1 = top)."""
        while self._open and self._open[-1][0] >= level:
            self._open.pop()
        self._open.append((level, text))
        self.first = self.first or text

    @property
    def path(self) -> tuple[str, ...]:
        """Heading texts from the top level down."""
        return tuple(text for _, text in self._open)


def _split_front_matter(lines: list[str]) -> tuple[str | None, list[str]]:
    if not lines or lines[0].strip() != "---":
        return None, lines
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            title = None
            for line in lines[1:end]:
                match = _FRONT_MATTER_TITLE.match(line)
                if match:
                    title = match.group(1).strip().strip("\"'") or None
            return title, lines[end + 1 :]
    return None, lines  # no closing fence: it was a thematic break, not front matter


class MarkdownParser:
    """Markdown: one section per blank-line-separated run of blocks (code kept whole), under the headings above it."""

    name = "Markdown"
    suffixes = (".md", ".markdown")

    def parse(self, data: bytes, name: str) -> ParsedDocument:
        """Walk the top-level blocks: headings open a path, code gives its content, the rest their source lines."""
        title, lines = _split_front_matter(decode_text(data).split("\n"))
        tokens = _BLOCKS.parse("\n".join(lines))
        builder = DocumentBuilder()
        headings = HeadingPath()
        run: list[int] = []  # [first line, end line] of adjacent prose blocks (paragraphs, lists, quotes, tables, html)

        def flush() -> None:
            if run:
                for paragraph in split_paragraphs("\n".join(lines[run[0] : run[1]])):
                    builder.add(paragraph, heading_path=headings.path)
                run.clear()

        for i, token in enumerate(tokens):
            if token.level or token.nesting < 0 or token.map is None or token.type == "hr":
                continue
            start, end = token.map
            if token.type == "heading_open":
                flush()
                headings.enter(int(token.tag[1:]), " ".join(line.strip() for line in tokens[i + 1].content.split("\n")))
            elif token.type in ("fence", "code_block"):
                flush()
                builder.add(token.content, heading_path=headings.path)
            elif run and run[1] == start:  # no blank line in between: "Steps:" and the list under it stay together
                run[1] = end
            else:
                flush()
                run[:] = [start, end]
        flush()
        return builder.build(title=title or headings.first)
