"""What a question asks: the kind of answer it wants, the entity it is about, and the words that carry it.

English and Portuguese, by rules over the folded question (no model): "how many" / "quantos" wants a
number, "quanto custa" an amount of money, "when" / "em que ano" a date, "who" / "quem" a name, "where" /
"onde" a place, "which … are" / "quais" an enumeration. The words that carry a question are its entities
(capitalised words, acronyms, numbers) and the asked attribute (its other content words), never a function
word, an auxiliary or an inflected verb; they are matched through `morphology.word_roots`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from indexes.lexical import STOP_WORDS, fold, query_language
from service.morphology import is_inflected_verb, word_roots


class AnswerType(str, Enum):
    """The kind of answer a question asks for."""

    NUMBER = "number"  # how many, how long, what percentage / quantos, quanto tempo
    AMOUNT = "amount"  # how much does it cost / quanto custa: money
    DATE = "date"  # when, what year / quando, em que ano
    PERSON = "person"  # who / quem: a person or an organisation
    PLACE = "place"  # where / onde
    LIST = "list"  # which … are, name the / quais são: several things
    OTHER = "other"


_MONEY = r"(cost|costs|price|prices|pay|paid|charge|charged|worth|fee|fees|salary|stipend|budget|custa|custam|custou|custo|preco|precos|pagar|cobra|cobrado|salario|mensalidade|assinatura)"
_RULES: tuple[tuple[re.Pattern[str], AnswerType], ...] = tuple(
    (re.compile(pattern), kind)
    for pattern, kind in (
        (rf"\bhow much\b.*\b{_MONEY}\b|\b{_MONEY}\b.*\bhow much\b|\bwhat (is|was|are|were) the (\w+ )?{_MONEY}\b", AnswerType.AMOUNT),
        (rf"\bquanto\b.*\b{_MONEY}\b|\b{_MONEY}\b.*\bquanto\b|\b(qual|quais) (e|sao|era|foi)? ?(o|a|os|as)? ?({_MONEY}|valor)\b", AnswerType.AMOUNT),
        (r"\bhow (many|much|long|old|far|big|large|tall|high|deep|wide|heavy|fast|often)\b", AnswerType.NUMBER),
        (r"\bwhat (percentage|percent|proportion|fraction|number|amount)\b", AnswerType.NUMBER),
        (r"\bquant[oa]s?\b|\bqual (a|o) (numero|quantidade|porcentagem|percentual|tamanho|duracao)\b", AnswerType.NUMBER),
        # "when" opens the question (or follows since / until): "What happens when it fails?" asks no date
        (r"^(when|since when|until when)\b|\b(what (year|years|date|decade|century|time|month|day|era|period)|which (year|date|decade|century|month|day))\b", AnswerType.DATE),
        (r"^(quando|desde quando|ate quando)\b|\b((em|de|desde|ate) (que|qual) (ano|data|dia|mes|seculo|decada|epoca|periodo)|(que|qual) (ano|data|dia|mes|seculo|decada))\b", AnswerType.DATE),
        (r"\b(who|whom|whose)\b", AnswerType.PERSON),
        (r"\bquem\b", AnswerType.PERSON),
        (r"\bwhere\b|\b(what|which) (city|country|state|region|place|town|continent|location|county|province|island|river)\b", AnswerType.PLACE),
        (r"\bonde\b|\b(em|de) (que|qual) (cidade|pais|regiao|lugar|local|continente)\b|\b(que|qual) (cidade|pais|regiao|lugar|local)\b", AnswerType.PLACE),
        (r"\b(what|which) (are|were)\b|\bname (the|two|three|four|five|some|all)\b|\blist (the|all)\b|\b(what|which) (two|three|four|five|six)\b|^which \w+s\b", AnswerType.LIST),
        (r"\bquais\b|\b(que|quais) (dois|duas|tres|quatro|cinco)\b", AnswerType.LIST),
    )
)

# Words that a question is made of but that carry nothing of what it asks (beyond the index's stop words).
_QUESTION_WORDS = frozenset(
    fold(w)
    for w in """what which who whom whose when where why how does did do is are was were been being has have had get
    gets got make made many much long kind type name named called call there any one ones thing things
    according other use uses used using
    o que qual quais quem quando onde porque por quanto quantos quantas quanta foi foram era eram sido sendo seja
    sao estava estavam tinha tinham teve tiveram tem têm fez fazer faz fazem faria vai vao houve ha existe existem
    chamado chamada chamados chamadas nome tipo tipos coisa coisas sobre entre ate apos antes depois usa usam usou
    usado usada usados usadas usar one two three four five dois duas tres quatro cinco
    i me my mine we us our ours you your yours can could should would may might must shall will
    big large long old far tall high deep wide heavy fast often
    eu me meu minha meus minhas nos nosso nossa voce voces posso podemos pode podem devo devemos deve devem
    preciso precisa precisam consigo""".split()
)
# How questions and passages are split into words for matching: on-call is two, max_tokens too.
WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CAPITALISED = re.compile(r"^[A-Z0-9À-Ý]\w*$")


@dataclass(frozen=True)
class Term:
    """One word that carries the question: as written, folded, and its roots for matching."""

    text: str
    folded: str
    roots: frozenset[str]
    entity: bool  # a name, acronym or number: what the question is about
    verb: bool = False  # an inflected verb form: matched for scoring, never a reason to abstain


@dataclass(frozen=True)
class QuestionAnalysis:
    """What `analyse_question` found: the asked type, the entities, the asked attribute words."""

    text: str
    language: str | None
    answer_type: AnswerType
    terms: tuple[Term, ...]
    asked: frozenset[str] = frozenset()  # every folded word of the question (a value it holds is no answer)

    @property
    def entities(self) -> tuple[Term, ...]:
        """The question's subject: its names, acronyms and numbers."""
        return tuple(t for t in self.terms if t.entity)

    @property
    def attributes(self) -> tuple[Term, ...]:
        """The asked attribute: the carrying words that are neither entities nor verbs."""
        return tuple(t for t in self.terms if not t.entity and not t.verb)

    @property
    def carrying(self) -> tuple[Term, ...]:
        """The words whose absence from every passage is a reason to abstain: entities and attributes."""
        return tuple(t for t in self.terms if not t.verb)


def answer_type(question: str) -> AnswerType:
    """The kind of answer a question asks for (OTHER when no rule says)."""
    folded = " ".join(WORD.findall(fold(question)))
    for pattern, kind in _RULES:
        if pattern.search(folded):
            return kind
    return AnswerType.OTHER


@lru_cache(maxsize=4096)
def analyse_question(question: str) -> QuestionAnalysis:
    """Type, language and carrying terms of a question."""
    words = WORD.findall(question)
    language = query_language(question)
    terms: list[Term] = []
    seen: set[str] = set()
    for i, word in enumerate(words):
        folded = fold(word)
        if folded in seen or folded in STOP_WORDS or folded in _QUESTION_WORDS:
            continue
        if len(folded) < 2 and not (folded.isdigit() or word.isupper()):
            continue
        entity = _is_entity(word, first=i == 0)
        seen.add(folded)
        verb = not entity and is_inflected_verb(folded, language)
        terms.append(Term(word, folded, word_roots(folded), entity, verb))
    asked = frozenset(fold(w) for w in words) | {t.folded for t in terms}
    return QuestionAnalysis(question, language, answer_type(question), tuple(terms), asked)


def _is_entity(word: str, first: bool) -> bool:
    """A capitalised word past the first, an acronym (two capitals, as in GPUs), or a number."""
    if any(c.isdigit() for c in word):
        return True
    if sum(c.isupper() for c in word) >= 2 or len(word) == 1 and word.isupper():
        return True
    return not first and bool(_CAPITALISED.match(word)) and word[0].isupper()
