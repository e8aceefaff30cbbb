"""Plain-text parser, plus the decoding and paragraph splitting the other text formats share."""

from __future__ import annotations

import codecs

from charset_normalizer import from_bytes

from indexes.errors import ParseError

from .base import DocumentBuilder, ParsedDocument

# Tab, newline, vertical tab, form feed and carriage return are normal in text files.
_ALLOWED_CONTROLS = frozenset("\t\n\v\f\r")
_MAX_CONTROL_RATIO = 0.02
_TIE_BREAK = "cp1252"  # the commonest single-byte encoding (what browsers read "latin-1" as)


def decode_text(data: bytes, declared: str | None = None) -> str:
    """Decode bytes as UTF-8, else the declared encoding, else charset-normalizer's guess."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = _decode_non_utf8(data, declared)
    if _looks_binary(text):
        raise ParseError("binary content: not a text file")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode_non_utf8(data: bytes, declared: str | None) -> str:
    if declared:
        try:
            return data.decode(codecs.lookup(declared).name, errors="replace")
        except LookupError:
            pass  # an unknown charset name in a file is common; fall back to detection
    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise ParseError("binary content: not a text file")
    # Short text (a CSV's cells) has too few words to tell Western from Central European: cp1252 wins a tie.
    western = next((m for m in matches if m.encoding == _TIE_BREAK), None)
    if western is not None and (western.chaos, western.coherence) == (best.chaos, best.coherence):
        best = western
    return str(best)


def _looks_binary(text: str) -> bool:
    if "\x00" in text:
        return True
    sample = text[:65536]
    controls = sum(1 for ch in sample if ch < " " and ch not in _ALLOWED_CONTROLS)
    return controls > len(sample) * _MAX_CONTROL_RATIO


def split_paragraphs(text: str) -> list[str]:
    """Split text on blank lines; a line scan, so linear even on odd whitespace."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in text.split("\n"):
        if line.strip():
            current.append(line.rstrip())
        elif current:
            paragraphs.append("\n".join(current))
            current = []
    if current:
        paragraphs.append("\n".join(current))
    return paragraphs


class TextParser:
    """Plain text: one section per paragraph."""

    name = "Plain text"
    suffixes = (".txt", ".text", ".log")

    def parse(self, data: bytes, name: str) -> ParsedDocument:
        """Decode and split into paragraphs."""
        builder = DocumentBuilder()
        for paragraph in split_paragraphs(decode_text(data)):
            builder.add(paragraph)
        return builder.build()
