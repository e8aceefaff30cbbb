"""The lexical side of retrieval: how text is analysed for FTS5 and how a question becomes a MATCH query."""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import Mapping

import Stemmer

# Text reaches FTS5 already folded and stemmed (see `analyse`); the tokenizer only splits it.
FTS_TOKENIZER = "unicode61 remove_diacritics 2"

# Bump when what is indexed or how questions are analysed changes: the catalog rebuilds every FTS table
# written with another version when it opens, and evaluation indexes are keyed by it.
ANALYSIS_VERSION = 5  # 5: English and Portuguese stems; 4: Portuguese stems only; 3: Snowball stems; 2: one FTS table per collection

_WORD = re.compile(r"\w+", re.UNICODE)

def fold(text: str) -> str:
    """Lower-case and strip diacritics, as the FTS5 tokenizer does."""
    if text.isascii():  # nothing to decompose: the common case at ingestion, ten times faster
        return text.lower()
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


def _words(text: str) -> list[str]:
    """A text's words, folded, in order."""
    return _WORD.findall(fold(text))


def query_language(text: str) -> str | None:
    """'en' or 'pt' by which language's function words the text uses more; None when it can't tell."""
    return _language(_words(text))


def _language(words: list[str]) -> str | None:
    """The language of folded words, as `query_language` tells it."""
    english = sum(w in ENGLISH_WORDS for w in words)
    portuguese = sum(w in PORTUGUESE_WORDS for w in words)
    if english == portuguese:
        return None
    return "en" if english > portuguese else "pt"


_LANGUAGES = {"en": "english", "pt": "portuguese"}
_local = threading.local()


def _thread_stemmers() -> dict[str, Stemmer.Stemmer]:
    """This thread's stemmers (a PyStemmer object must not be shared between threads)."""
    stemmers = getattr(_local, "stemmers", None)
    if stemmers is None:
        stemmers = _local.stemmers = {code: Stemmer.Stemmer(name) for code, name in _LANGUAGES.items()}
    return stemmers


def word_stems(word: str) -> frozenset[str]:
    """A folded word's English and Portuguese stems."""
    return frozenset(s.stemWord(word) for s in _thread_stemmers().values())


def _stem_words(words: list[str], language: str | None) -> list[str]:
    """Folded words as BM25 sees them: Snowball stems in the text's language; with no language, each word
    and its English and Portuguese stems where they differ (so either kind of text matches).

    Stems pay in Portuguese (FaQuAD BM25 R@1 .829 -> .854) and, since queries count repeated words, in
    English too: SQuAD hybrid R@1 .826 -> .838, ArguAna 55.28 -> 55.56 (docs/quality.md)."""
    stemmers = _thread_stemmers()
    if language in stemmers:
        return stemmers[language].stemWords(words)
    english, portuguese = stemmers["en"].stemWords(words), stemmers["pt"].stemWords(words)
    return [s for forms in zip(words, english, portuguese) for s in dict.fromkeys(forms)]


def analyse(text: str) -> str:
    """The words of a text as FTS5 indexes them: folded, stemmed in its language (`query_language`)."""
    words = _words(text)
    return " ".join(_stem_words(words, _language(words)))


def word_count(text: str) -> int:
    """How many words a text has."""
    return len(_WORD.findall(text))


def _content_words(words: list[str]) -> list[str]:
    """The words that are not function words, in order, repeats kept."""
    return [w for w in words if w not in STOP_WORDS]


def query_terms(question: str) -> list[str]:
    """The distinct content words of a question, folded, in order."""
    return list(dict.fromkeys(_content_words(_words(question))))


def query_stems(question: str) -> list[str]:
    """The stems BM25 looks up for a question: its content words, stemmed in its language, repeats kept."""
    words = _words(question)
    return _stem_words(_content_words(words), _language(words))


def match_expression(question: str) -> str | None:
    """An FTS5 MATCH expression ORing the stems of the question's content words (quoted, so no FTS syntax
    leaks through), once per occurrence: FTS5 scores each phrase of the query, so a word the query repeats
    weighs more, as in BM25's query term frequency. Questions rarely repeat a word; a long query (a whole
    argument in ArguAna) does, and there BM25 rose from 45.6 to 49.0 nDCG@10 (docs/quality.md)."""
    return or_expression(query_stems(question))


# BM25 over millions of chunks. FTS5 scores every row that holds any of a query's terms, so a question of common
# words ("What year did the war start?") costs as much as all the rows holding any of them. A query whose terms
# hold more than ROW_BUDGET rows between them keeps its rarest terms while they fit (always the rarest one): the
# common terms it drops have the lowest idf. Below ROW_BUDGET rows (any collection of fewer chunks) every query
# is asked whole, as before. At 1M chunks (benchmarks/scale.py, docs/quality.md): SQuAD questions p50 / p99
# 226 / 1,323 ms -> 122 / 246 ms, gold hit@1 .785 -> .760; whole-argument queries p50 5.4 s -> 262 ms.
ROW_BUDGET = 100_000


def bounded_stems(stems: list[str], frequencies: Mapping[str, int], budget: int = ROW_BUDGET) -> list[str]:
    """The query stems (in order, repeats kept) that BM25 is asked for within a budget of rows: all of them when
    the rows their terms match add up to at most `budget` (a row counted once per term holding it); otherwise the
    rarest terms, rarest first, while their rows fit, and always the rarest one. A term missing from
    `frequencies` matches no row."""
    distinct = list(dict.fromkeys(stems))
    if sum(frequencies.get(t, 0) for t in distinct) <= budget:
        return list(stems)
    kept: set[str] = set()
    rows = 0
    for term in sorted(distinct, key=lambda t: frequencies.get(t, 0)):  # stable: ties keep the query's order
        df = frequencies.get(term, 0)
        if kept and rows + df > budget:
            break
        kept.add(term)
        rows += df
    return [t for t in stems if t in kept]


def or_expression(stems: list[str]) -> str | None:
    """An FTS5 MATCH expression ORing the stems, each quoted (no FTS syntax leaks through), repeats kept."""
    return " OR ".join(f'"{t}"' for t in stems) if stems else None


def fts_body(text: str, heading_path: tuple[str, ...] | list[str]) -> str:
    """The text indexed for BM25: headings first, so a section's title counts as evidence; stemmed in the
    language of the chunk's own text (or, when that can't be told, of the headings and text together)."""
    words = _words(text)
    both = _words(" ".join(heading_path)) + words
    return " ".join(_stem_words(both, _language(words) or _language(both)))


# FTS5's unicode61 tokenizer keeps letters and digits and splits on everything else (underscores too).
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def split_terms(analysed: str) -> list[str]:
    """Analysed text cut into terms as FTS5's tokenizer cuts it."""
    return _TOKEN.findall(analysed)


def index_terms(text: str, heading_path: tuple[str, ...] | list[str]) -> list[str]:
    """The terms of a chunk exactly as FTS5 indexes its `fts_body`, for backends that count them themselves."""
    return split_terms(fts_body(text, heading_path))
