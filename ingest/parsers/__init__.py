"""Parser registry: pick a parser by file suffix and turn bytes into a ParsedDocument."""

from __future__ import annotations

from pathlib import PurePath

from indexes.errors import DocQAError, ParseError, UnsupportedMediaType

from .base import DocumentBuilder, ParsedDocument, Parser, Section
from .docx import DocxParser
from .html import HtmlParser
from .markdown import MarkdownParser
from .pdf import PdfParser
from .text import TextParser

PARSERS: list[Parser] = [PdfParser(), MarkdownParser(), HtmlParser(), DocxParser(), TextParser()]
_BY_SUFFIX: dict[str, Parser] = {suffix: parser for parser in PARSERS for suffix in parser.suffixes}
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_BY_SUFFIX)

__all__ = [
    "PARSERS",
    "SUPPORTED_SUFFIXES",
    "DocumentBuilder",
    "ParsedDocument",
    "Parser",
    "Section",
    "parse_bytes",
    "parser_for",
]


def _suffix(name: str) -> str:
    return PurePath(name).suffix.lower()


def parser_for(name: str) -> Parser | None:
    """The parser for a file name's suffix (case-insensitive), or None."""
    return _BY_SUFFIX.get(_suffix(name))


def parse_bytes(data: bytes, name: str) -> ParsedDocument:
    """Parse one file's bytes; every failure is a DocQAError with a reason people can read."""
    parser = parser_for(name)
    if parser is None:
        raise UnsupportedMediaType(f"unsupported file type: {_suffix(name) or '(no suffix)'}")
    if not data:
        raise ParseError("empty file")
    try:
        document = parser.parse(data, name)
    except DocQAError:
        raise
    except Exception as e:  # a parser bug or a library surprise must still read as a parse failure
        raise ParseError(f"{type(e).__name__}: {e}") from e
    if not document.text.strip():
        raise ParseError("no extractable text")
    return document
