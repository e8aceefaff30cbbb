"""Parser registry: pick a parser by file suffix and turn bytes into a ParsedDocument.

Parsers register under the `docqa.parsers` entry-point group (docqa's own in its pyproject.toml, as a plugin's
are); an entry point names a class, or any callable, that takes no arguments and returns a `Parser`. A plugin's
parser for a suffix a built-in one reads takes that suffix over.

This registry is the one list of formats: the 415 check, `discover`, the upload form (through `GET /v1/formats`),
the upload route's description and the README's table (checked by a test) all read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import PurePath

from indexes import plugins
from indexes.errors import DocQAError, ParseError, PluginError, UnsupportedMediaType

from .base import DocumentBuilder, ParsedDocument, Parser, Section

GROUP = plugins.PARSERS

__all__ = [
    "DocumentBuilder",
    "ParsedDocument",
    "Parser",
    "Section",
    "Format",
    "formats",
    "parse_bytes",
    "parser_for",
    "supported_suffixes",
]


@cache
def _by_suffix() -> dict[str, Parser]:
    """Every registered parser by the suffixes it reads, lower case."""
    found: dict[str, Parser] = {}
    for name, factory in plugins.load(GROUP).items():
        parser = factory()
        for suffix in parser.suffixes:
            if not suffix.startswith(".") or len(suffix) < 2:
                raise PluginError(f"{GROUP} plugin {name!r}: suffixes start with a dot, as '.txt' does; got {suffix!r}")
            found[suffix.lower()] = parser
    return found


@cache
def supported_suffixes() -> frozenset[str]:
    """The file suffixes some registered parser reads (built once, like the registry it reads)."""
    return frozenset(_by_suffix())


@dataclass(frozen=True)
class Format:
    """A format people can hand docqa: its name ("PDF") and the suffixes that name it."""

    name: str
    suffixes: tuple[str, ...]


@cache
def formats() -> tuple[Format, ...]:
    """Every format some registered parser reads, by name; a parser without a `name` is named by its suffixes."""
    by_parser: dict[int, tuple[Parser, list[str]]] = {}
    for suffix, parser in _by_suffix().items():
        by_parser.setdefault(id(parser), (parser, []))[1].append(suffix)
    found = [Format(getattr(parser, "name", None) or ", ".join(suffixes), tuple(suffixes))
             for parser, suffixes in by_parser.values()]
    return tuple(sorted(found, key=lambda f: f.name.casefold()))


def _suffix(name: str) -> str:
    return PurePath(name).suffix.lower()


def parser_for(name: str) -> Parser | None:
    """The parser for a file name's suffix (case-insensitive), or None."""
    return _by_suffix().get(_suffix(name))


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
