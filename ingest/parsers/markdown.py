"""Markdown parser: a line scanner for headings, blocks, fenced code and front matter."""

from __future__ import annotations

import re

from .base import DocumentBuilder, ParsedDocument
from .text import decode_text

# Every pattern is anchored and free of nested quantifiers, so each line is scanned once.
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+|$)")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")
_BREAK = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_FRONT_MATTER_TITLE = re.compile(r"title[ \t]*:[ \t]*(.*)$", re.IGNORECASE)


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


def _atx_heading(line: str) -> tuple[int, str] | None:
    match = _ATX.match(line)
    if not match:
        return None
    text = line[match.end() :].rstrip()
    closed = text.rstrip("#")
    if not closed or closed[-1] in " \t":  # a closing run of #s only counts after a space
        text = closed.rstrip()
    return len(match.group(1)), text


class MarkdownParser:
    """Markdown: one section per block, carrying the headings above it."""

    suffixes = (".md", ".markdown")

    def parse(self, data: bytes, name: str) -> ParsedDocument:
        """Scan lines once, tracking headings, fences and blank-line-separated blocks."""
        title, lines = _split_front_matter(decode_text(data).split("\n"))
        builder = DocumentBuilder()
        headings = HeadingPath()
        block: list[str] = []
        fence: str | None = None

        def flush() -> None:
            builder.add("\n".join(block), heading_path=headings.path)
            block.clear()

        for line in lines:
            if fence is not None:
                if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                    fence = None
                    flush()
                else:
                    block.append(line)
                continue
            fence_match = _FENCE.match(line)
            if fence_match:
                flush()
                fence = fence_match.group(1)
                continue
            atx = _atx_heading(line)
            if atx:
                flush()
                headings.enter(*atx)
                continue
            setext = _SETEXT.match(line)
            if setext and block and not block[-1].lstrip().startswith(("-", "*", "+", ">")):
                text = " ".join(part.strip() for part in block)
                block.clear()
                headings.enter(1 if setext.group(1)[0] == "=" else 2, text)
                continue
            if not line.strip() or _BREAK.match(line):
                flush()
            else:
                block.append(line.rstrip())
        flush()
        return builder.build(title=title or headings.first)
