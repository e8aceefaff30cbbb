"""Simple morphology for matching a question's words to a passage's: usou / usado / usando, treinar /
treinado / treinamento, trained / training, GPU / GPUs.

Snowball stems (the ones BM25 uses) leave Portuguese verb forms apart ("usou", "usad", "usand"), so each word
also gets a light root: its folded form less the longest inflectional or derivational ending that leaves at
least three letters (us for the forms of usar / use). Two words match when any of their roots agree.
"""

from __future__ import annotations

from functools import lru_cache

from indexes.lexical import word_stems

# Longest first within each language; only endings that leave a root of at least _MIN_ROOT letters are cut.
_PORTUGUESE_ENDINGS = tuple(sorted(
    """amentos imentos amento imento acoes icoes acao icao adores edores idores adoras ador edor idor adora
    aram eram iram ariam eriam iriam avam iam ando endo indo ados adas idos idas ado ada ido ida ava
    ou eu iu ar er ir am em as es os a e o""".split(),
    key=len, reverse=True,
))
_ENGLISH_ENDINGS = tuple(sorted("ations ation ments ment ings ing ers er ied ies ed es s e".split(), key=len, reverse=True))
_MIN_ROOT = 3
_PREFIX = 7  # words longer than this also match on their first seven letters (six made internet ~ international)
# usar / usou / usado / usando / used / using share the root "us": allowed only for these verb endings.
_SHORT_ROOTS = frozenset({"us"})
_VERB_ROOT_ENDINGS = frozenset("ou ado ada ados adas ando ar am a ed ing e es".split())

# Endings that mark a word as an inflected verb (a participle, gerund, past form or infinitive), by language.
_VERB_ENDINGS = {
    "pt": ("ando", "endo", "indo", "aram", "eram", "iram", "ou", "ado", "ada", "ados", "adas", "ido", "ida", "idos",
           "idas", "ar", "er", "ir"),
    "en": ("ing", "ed"),
}
_NOT_VERBS = frozenset(
    """estado estados mercado mercados resultado resultados lado lados dado dados partido partidos periodo
    periodos sentido sentidos conteudo conteudos metodo metodos lugar mulher poder dolar thing string king
    ring spring wing building meeting ceiling need speed seed feed hundred""".split()
)


def light_root(word: str) -> str:
    """A folded word less its longest ending (Portuguese first, then English) that leaves a root."""
    for endings in (_PORTUGUESE_ENDINGS, _ENGLISH_ENDINGS):
        for ending in endings:
            if word.endswith(ending):
                root = word[: -len(ending)]
                if len(root) >= _MIN_ROOT or root in _SHORT_ROOTS and ending in _VERB_ROOT_ENDINGS:
                    return root
    return word


@lru_cache(maxsize=65536)
def word_roots(word: str) -> frozenset[str]:
    """The folded word itself, its Snowball stems, its light root, and for a long word its first
    _PREFIX letters (a truncation stem: parameters / parâmetros, documentation / documentos)."""
    roots = {word, light_root(word), *word_stems(word)}
    if len(word) > _PREFIX:
        roots.add(word[:_PREFIX] + "…")
    return frozenset(roots)


def is_inflected_verb(word: str, language: str | None = None) -> bool:
    """Whether a folded word reads as an inflected verb form in the language (either, when unknown)."""
    if word in _NOT_VERBS or len(word) < 4:
        return False
    endings = _VERB_ENDINGS.get(language or "", _VERB_ENDINGS["pt"] + _VERB_ENDINGS["en"])
    return word.endswith(endings)


def roots_of(words: list[str]) -> set[str]:
    """Every root of every word."""
    out: set[str] = set()
    for word in words:
        out |= word_roots(word)
    return out
