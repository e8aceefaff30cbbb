"""The language of a set of documents, by which `auto` chooses a new collection's embedder.

Function words tell languages apart (`indexes.lexical`'s English and Portuguese lists): English prose is a
third or more English function words, and text in another language has few of them (Portuguese, Spanish,
French, German: under a tenth; other scripts none). Each document gets a language; the set is English unless
a fifth or more of its documents are not, so an English collection with a stray quotation stays English and a
mixed one gets the embedder that reads both.
"""

from __future__ import annotations

from typing import Sequence

from indexes.lexical import ENGLISH_WORDS, PORTUGUESE_WORDS, _words

ENGLISH_SHARE = 0.15  # of a document's words, at least, for it to read as English
MIN_WORDS = 20  # a shorter document (a title, a table of numbers) doesn't count either way
NON_ENGLISH_SHARE = 0.2  # of the documents that count, at least, for the set to read as not English
SAMPLE_CHARS = 20_000  # read of each document


def text_language(text: str) -> str | None:
    """'en', 'pt', 'other' (not English, not Portuguese) or None (too few words to tell)."""
    words = _words(text[:SAMPLE_CHARS])
    if len(words) < MIN_WORDS:
        return None
    english = sum(w in ENGLISH_WORDS for w in words) / len(words)
    portuguese = sum(w in PORTUGUESE_WORDS for w in words) / len(words)
    if english >= ENGLISH_SHARE and english > portuguese:
        return "en"
    return "pt" if portuguese >= ENGLISH_SHARE else "other"


def documents_language(texts: Sequence[str]) -> str | None:
    """The language a set of documents is in for choosing an embedder: 'en', the most common other language
    when a fifth or more of the documents that can be told are not English, None when none can be told."""
    found = [language for language in map(text_language, texts) if language is not None]
    if not found:
        return None
    others = [language for language in found if language != "en"]
    if len(others) < NON_ENGLISH_SHARE * len(found):
        return "en"
    return max(set(others), key=others.count)
