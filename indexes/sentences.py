"""Sentences of a text as character spans: what chunking splits at, sentence vectors embed, and evidence and
citation checks score. Shared by `ingest/` and `service/`, so it lives here."""

from __future__ import annotations

import re

# Lower-cased abbreviations (without the final dot) after which a period does not end a sentence.
_ABBREVIATIONS = frozenset(
    "e.g i.e etc cf vs al approx dr dra mr mrs ms prof profa sr sra srta jr st fig figs no nº n.º nos "
    "vol p pp ed eds inc ltd co corp dept est ex exmo exma av pág pag cap art arts obs sec ca".split()
)
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)|\n")
_WRAPPED_LINE = 30  # a line at least this long that runs on past its break is prose wrapped, not a heading or item


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Split text[start:end] into stripped sentence spans at . ! ? … and line breaks.

    A period after a known abbreviation (e.g., Dr., Sra.) or an initial, or before a lower-case word, does not split;
    decimals never do, since a sentence end needs whitespace after it.
    """
    end = len(text) if end is None else end
    spans, begin = [], start
    for match in _SENTENCE_END.finditer(text, start, end):
        if match.group() == "\n":
            if _wrapped(text, begin, match.start(), match.end(), end):
                continue
        elif not _ends_sentence(text, begin, match.start(), match.end(), end):
            continue
        spans.append((begin, match.end()))
        begin = match.end()
    spans.append((begin, end))
    return [s for s in (strip_span(text, a, b) for a, b in spans) if s[0] < s[1]]


def _wrapped(text: str, begin: int, newline: int, after: int, end: int) -> bool:
    """Whether a line break only wraps a sentence (PDF lines, hard-wrapped Markdown): the line before runs on
    (no closing punctuation, long enough to be prose) and the next line continues it (a lower-case word or a
    figure). A blank line or a list item always starts anew."""
    line = text[max(begin, text.rfind("\n", begin, newline) + 1) : newline].rstrip()
    nxt = text[after:end]
    if not line or not nxt or nxt[0] in "\n-*•" or line[-1] in ".!?…:;|":
        return False
    return len(line) >= _WRAPPED_LINE and (nxt[0].islower() or nxt[0].isdigit())


def _ends_sentence(text: str, begin: int, dot: int, after: int, end: int) -> bool:
    """Whether the punctuation at text[dot:after] closes a sentence."""
    following = text[after:end].lstrip()
    if following[:1].islower():
        return False
    if text[dot] != ".":
        return True
    word = text[begin:dot].rsplit(None, 1)[-1] if text[begin:dot].strip() else ""
    word = word.lstrip("([\"'“‘«").lower()
    return not (word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()))


def split_sentences(text: str) -> list[str]:
    """The sentences of a text, stripped, without empties."""
    return [text[a:b].strip() for a, b in sentence_spans(text) if text[a:b].strip()]


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Move [start, end) inwards past whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
