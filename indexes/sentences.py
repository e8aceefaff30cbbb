"""Sentences of a text as character spans: what chunking splits at, sentence vectors embed, and evidence and
citation checks score. Shared by `ingest/` and `service/`, so it lives here."""

from __future__ import annotations

import re

# Lower-cased abbreviations (without the final dot) after which a period does not end a sentence.
_ABBREVIATIONS = frozenset(
    "e.g i.e cf vs al dr dra mr mrs ms prof profa rev sr sra srta jr st ed eds inc ltd co corp exmo exma av obs "
    "ex".split()
)
# Abbreviations that stand before a figure (art. 3, approx. 4 kg; so does a lower-case letter: p. 12, c. 1455):
# before a capitalised word their period ends the sentence (Buddhist art. Mongolian …, … etc. As a result …).
_BEFORE_FIGURES = frozenset(
    "etc approx ca fig figs no nº n.º nos vol pp pág pag cap art arts sec dept est max min".split()
)
_FIGURE = re.compile(r"[\dº°]|[IVXLCDM]+\b")  # a number, an ordinal sign or a Roman numeral (p. XLIX)
# What follows an initial: another initial, or a name of two capitalised words (J. Robert Oppenheimer).
_NAME_GOES_ON = re.compile(r"[A-ZÀ-Ý]\.(?:\s|$)|[A-ZÀ-Ý][\w'’-]*,?\s+[A-ZÀ-Ý]")
# A sentence ends at . ! ? … with any closing quotes or brackets, a citation mark ([citation needed], [3]) or
# a page reference (:93, :1–4) after it, then white space; or at a line break.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?:\[[^\[\]\n]{1,40}\]|:\d+(?:[–-]\d+)?)*(?=\s)|\n")
SPLITTER_VERSION = 2  # bump when the rules change: evaluation scratch indexes are keyed by it
_WRAPPED_LINE = 30  # a line at least this long that runs on past its break is prose wrapped, not a heading or item


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Split text[start:end] into stripped sentence spans at . ! ? … and line breaks.

    A period before a lower-case word does not split, nor one after a known abbreviation (e.g., Dr., Sra.), a dotted
    acronym (U.S.) or an initial, nor one after an abbreviation of a figure before its figure (art. 3); decimals never
    do, since a sentence end needs whitespace after it. Citation marks ([citation needed], :93) stay with the
    sentence before them. Measured against pysbd and blingfire in benchmarks/sentences.py (docs/quality.md).
    """
    end = len(text) if end is None else end
    spans, begin = [], start
    for match in _SENTENCE_END.finditer(text, start, end):
        if match.group() == "\n":
            if _wrapped(text, start, match.start(), match.end(), end):
                continue
        elif not _ends_sentence(text, begin, match.start(), match.end(), end):
            continue
        spans.append((begin, match.end()))
        begin = match.end()
    spans.append((begin, end))
    return [s for s in (strip_span(text, a, b) for a, b in spans) if s[0] < s[1]]


def _wrapped(text: str, start: int, newline: int, after: int, end: int) -> bool:
    """Whether a line break only wraps a sentence (PDF lines, hard-wrapped Markdown): the line before runs on
    (no closing punctuation, long enough to be prose) and the next line continues it (a lower-case word or a
    figure). A blank line or a list item always starts anew."""
    line = text[max(start, text.rfind("\n", start, newline) + 1) : newline].rstrip()
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
    words = text[begin:dot].rsplit(None, 2)[-2:]  # the word before the period and the one before that
    word = words[-1].lstrip("([\"'“‘«").rsplit("-", 1)[-1] if words else ""
    folded = word.lower()
    if text[dot + 1 : dot + 2] != "." and (folded in _ABBREVIATIONS or _is_acronym(folded)):
        return False  # (a second period ends the sentence after an abbreviation: … 2700–2300 a.C.. Seu …)
    if len(word) == 1 and word.isupper():
        # An initial (John F. Kennedy, biologist E. O. Wilson, physicist J. Robert Oppenheimer), unless it follows
        # a lower-case word and no name goes on after it: then it is a letter of the text (in C. Thus …).
        before = words[-2].lstrip("([\"'“‘«") if len(words) > 1 else ""
        return bool(before) and not before[0].isupper() and not _NAME_GOES_ON.match(following)
    if folded in _BEFORE_FIGURES or (len(word) == 1 and word.isalpha()):
        return not _FIGURE.match(following)
    return True


def _is_acronym(word: str) -> bool:
    """A dotted acronym (u.s, u.n, a.k.a, e.u.a): letters, one or two at a time, between dots."""
    parts = word.split(".")
    return len(parts) > 1 and all(0 < len(p) <= 2 and p.isalpha() for p in parts)


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
