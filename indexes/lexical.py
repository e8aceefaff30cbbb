"""The lexical side of retrieval: how text is analysed for FTS5 and how a question becomes a MATCH query."""

from __future__ import annotations

import re
import unicodedata

# FTS5 folds case and diacritics itself ("remove_diacritics 2"), so "ferias" matches "férias".
FTS_TOKENIZER = "unicode61 remove_diacritics 2"

# Bump when what is indexed or how questions are analysed changes: evaluation indexes are keyed by it.
ANALYSIS_VERSION = 2  # 2: one FTS table per collection; his/her/him/he are stop words

_WORD = re.compile(r"\w+", re.UNICODE)

def fold(text: str) -> str:
    """Lower-case and strip diacritics, as the FTS5 tokenizer does."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# Function words in English and Portuguese: they carry no evidence and slow OR queries down.
_ENGLISH = """a an and are as at be been but by can could did do does for from had has have how i if in into is it
    its of on or our she should so than that the their them then there these they this those to was we were
    what when where which who whom whose why will with would you your about after all also any because before
    between both each few more most other over same some such through under until up very while many much
    his her him he""".split()
_PORTUGUESE = """o os as um uma uns umas de do da dos das em no na nos nas por pelo pela pelos pelas para com sem e ou
    que se ao aos à às é ser foi são está estão como qual quais quando onde quem mais mas seu sua seus suas
    ele ela eles elas isso isto esse essa este esta há ter tem têm já também muito pode deve
    quanto quanta quantos quantas""".split()
ENGLISH_WORDS = frozenset(fold(w) for w in _ENGLISH)
PORTUGUESE_WORDS = frozenset(fold(w) for w in _PORTUGUESE)
STOP_WORDS = ENGLISH_WORDS | PORTUGUESE_WORDS


def query_language(text: str) -> str | None:
    """'en' or 'pt' by which language's function words the text uses more; None when it can't tell."""
    words = _WORD.findall(fold(text))
    english = sum(w in ENGLISH_WORDS for w in words)
    portuguese = sum(w in PORTUGUESE_WORDS for w in words)
    if english == portuguese:
        return None
    return "en" if english > portuguese else "pt"


def query_terms(question: str) -> list[str]:
    """The distinct content words of a question, folded, in order."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(fold(question)):
        if word not in STOP_WORDS and word not in seen:
            seen[word] = None
    return list(seen)


def match_expression(question: str) -> str | None:
    """An FTS5 MATCH expression ORing the question's terms (quoted, so no FTS syntax leaks through)."""
    terms = query_terms(question)
    if not terms:
        return None
    return " OR ".join(f'"{t}"' for t in terms)


def fts_body(text: str, heading_path: tuple[str, ...] | list[str]) -> str:
    """The text indexed for BM25: headings first, so a section's title counts as evidence."""
    heading = " ".join(heading_path)
    return f"{heading}\n{text}" if heading else text
