"""What kind of answer a sentence can give: numbers, amounts of money, dates, names, enumerations.

Rules over the sentence's text in English and Portuguese, matched to `questions.AnswerType`: a sentence
"carries" an answer type when it holds a value of that kind that the question itself does not already
contain (the answer to "How many GPUs did Orion use?" is a number other than any in the question).
"""

from __future__ import annotations

import re

from indexes.lexical import STOP_WORDS, fold, query_language
from service.questions import AnswerType, QuestionAnalysis

_NUMBER_WORDS = frozenset(
    """one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen
    eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred hundreds thousand thousands
    million millions billion billions trillion dozen dozens half twice thrice double triple once single
    dois duas tres quatro cinco seis sete oito nove dez onze doze treze catorze quatorze quinze dezesseis
    dezessete dezoito dezenove vinte trinta quarenta cinquenta sessenta setenta oitenta noventa cem cento
    duzentos trezentos quatrocentos quinhentos mil milhao milhoes bilhao bilhoes trilhao metade dobro triplo
    terco quarto duzia dezenas centenas milhares""".split()
)
_MONTHS = frozenset(
    """january february march april june july august september october november december jan feb apr jun jul
    aug sep sept oct nov dec janeiro fevereiro marco abril maio junho julho agosto setembro outubro novembro
    dezembro monday tuesday wednesday thursday friday saturday sunday mondays fridays sundays segunda-feira
    terca-feira quarta-feira quinta-feira sexta-feira sabado domingo""".split()
)  # not "may" (a modal verb) nor the bare Portuguese ordinals (segunda, terça: also second, third)
_MAY = re.compile(r"\bMay\b(?=\s+\d)|\b\d{1,2}\s+May\b|\bin May\b")
_DATE_WORDS = frozenset(
    """century centuries decade decades year years ago bc ad bce ce seculo seculos decada decadas ano anos
    today yesterday tomorrow weekly daily annually monthly hoje ontem amanha""".split()
)
_CURRENCY_WORDS = frozenset(
    """euro euros dollar dollars pound pounds yen yuan franc francs rupee rupees cent cents usd eur gbp brl
    dolar dolares reais centavo centavos libra libras""".split()
)
_FREE_WORDS = frozenset("free gratis gratuito gratuita gratuitos gratuitas".split())
_DIGITS = re.compile(r"\d")
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})s?\b")
_TIME = re.compile(r"\b\d{1,2}[:h]\d{2}\b")
_CURRENCY_SIGN = re.compile(r"[$€£¥₹]")
_WORD = re.compile(r"[^\W_]+(?:[-'’.,][^\W_]+)*", re.UNICODE)
_LIST_SEPARATORS = re.compile(r"[,;]|\s(?:and|or|e|ou)\s|\s[-–•]\s|:\s")
# Words that start a capitalised run without being a name (sentence openers in either language).
_OPENERS = STOP_WORDS | frozenset(fold(w) for w in "In On At The A An This These It Em No Na Os As Um Uma Se".split())


def words(text: str) -> list[str]:
    """A text's words as written (numbers keep their inner separators: 1,500 / 3.5 / 120-milhões)."""
    return _WORD.findall(text)


def _is_number(folded: str) -> bool:
    return bool(_DIGITS.search(folded)) or folded in _NUMBER_WORDS


def numbers(text: str) -> set[str]:
    """The numbers a text writes, in digits or words (folded)."""
    return {w for w in (fold(word) for word in words(text)) if _is_number(w)}


def has_amount(text: str) -> bool:
    """Money: a currency sign or word and a number in the sentence, or 'free' / 'grátis'."""
    folded = [fold(w) for w in words(text)]
    if any(w in _FREE_WORDS for w in folded):
        return True
    if not any(_is_number(w) for w in folded):
        return False
    return bool(_CURRENCY_SIGN.search(text)) or any(w in _CURRENCY_WORDS for w in folded)


def has_date(text: str) -> bool:
    """A year, month, weekday, clock time or a date word with a number."""
    if _YEAR.search(text) or _TIME.search(text) or _MAY.search(text):
        return True
    folded = [fold(w) for w in words(text)]
    if any(w in _MONTHS for w in folded):
        return True
    return any(w in _DATE_WORDS for w in folded) and any(_is_number(w) for w in folded)


def names(text: str) -> set[str]:
    """Folded capitalised words that read as names: not opening the sentence (unless another follows), not
    a function word."""
    found: set[str] = set()
    tokens = words(text)
    for i, word in enumerate(tokens):
        if not word[:1].isupper():
            continue
        folded = fold(word)
        if folded in _OPENERS:
            continue
        if i == 0 and not (len(tokens) > 1 and tokens[1][:1].isupper()):
            continue
        found.add(folded)
    return found


def enumerates(text: str) -> bool:
    """Whether the sentence lists several things (separators between words, or a bullet)."""
    return len(_LIST_SEPARATORS.findall(text)) >= 2 or text.lstrip().startswith(("-", "•", "*"))


_NEGATIONS = {
    "en": frozenset("not never no none nor without cannot".split()),
    "pt": frozenset("nao nunca nenhum nenhuma jamais sem nem".split()),  # "no" is "in the" here
}
_NEGATED_VERB = re.compile(r"n['’]t\b", re.IGNORECASE)
_ANTONYMS: dict[str, frozenset[str]] = {}
for _pair in """first last|largest smallest|biggest smallest|before after|increase decrease|increased decreased|
        more less|more fewer|earliest latest|begin end|began ended|north south|east west|minimum maximum|least most|
        lowest highest|low high|won lost|win lose|major minor|early late|earlier later|inside outside|upper lower|
        longest shortest|oldest newest|older newer|top bottom|positive negative|rise fall|strong weak|
        strongest weakest|common rare|private public|same different|success failure|ancient modern|
        primeiro ultimo|maior menor|antes depois|mais menos|norte sul|leste oeste|maximo minimo|alto baixo|
        primeira ultima|inicio fim|aumentou diminuiu|ganhou perdeu|input output|inputs outputs|male female|
        hot cold|open closed|opened closed|fixed flexible|finite infinite|limited infinite|limited unlimited|
        simple complex|simplicity complexity|simplicity difficulty|easy difficult|easy hard|easier harder|
        wet dry|cheap expensive|cheaper expensive|rich poor|young old|younger older|import export|imports exports|
        internal external|offensive defensive|accept reject|accepted rejected|allowed forbidden|allowed banned|
        legal illegal|possible impossible|true false|many few|gain loss|buy sell|bought sold|born died|
        birth death|start finish|started ended|started finished|created destroyed|built destroyed|rose fell|
        raised lowered|above below|inner outer|beginning end|entry exit|arrival departure|majority minority|
        superior inferior|unified separated|unified divided|combined separated|victory defeat|ally enemy|
        allies enemies|friend enemy|supported opposed|support oppose|agree disagree|include exclude|
        included excluded|higher lower|greater lesser|larger smaller|longer shorter|wider narrower|
        heavier lighter|faster slower|dark light|black white|love hate|peace war|winner loser|won defeated|
        entrada saida|compra venda|comprou vendeu|abriu fechou|aberto fechado|interno externo|vitoria derrota""".split("|"):
    _a, _b = _pair.split()
    _ANTONYMS[_a] = _ANTONYMS.get(_a, frozenset()) | {_b}
    _ANTONYMS[_b] = _ANTONYMS.get(_b, frozenset()) | {_a}
_NEGATIVE_PREFIXES = ("un", "non", "in", "im", "dis", "ir", "il", "des")
_DATE_PREPOSITIONS = frozenset("in since by until before after em desde ate".split())


def negated(text: str) -> bool:
    """Whether a text holds a negation in its language (not, never, no, n't / não, nunca, nenhum, sem)."""
    language = query_language(text)
    negations = _NEGATIONS[language] if language in _NEGATIONS else _NEGATIONS["en"] - {"no"} | _NEGATIONS["pt"]
    return bool(_NEGATED_VERB.search(text)) or any(fold(w) in negations for w in words(text))


def antonym_swap(question: str, sentence: str) -> tuple[str, str] | None:
    """(question word, sentence word) where the question says one of a pair of opposites (first / last,
    maior / menor) and the sentence only the other; None when there is no such pair."""
    asked = {fold(w) for w in words(question)}
    said = {fold(w) for w in words(sentence)}
    for word in sorted(asked & _ANTONYMS.keys()):
        if word not in said and _ANTONYMS[word] & said:
            return word, sorted(_ANTONYMS[word] & said)[0]
    for word in sorted(asked - said):  # a negative prefix the sentence lacks: unreserved / reserved
        for prefix in _NEGATIVE_PREFIXES:
            rest = word[len(prefix):]
            if word.startswith(prefix) and len(rest) >= 4 and rest in said:
                return word, rest
    return None


def counts(text: str) -> set[str]:
    """The numbers of a text that are not years given as dates ("since 2022", "em 2019")."""
    tokens = [fold(w) for w in words(text)]
    found = set()
    for i, word in enumerate(tokens):
        if not _is_number(word):
            continue
        if _YEAR.fullmatch(word) and i and tokens[i - 1] in _DATE_PREPOSITIONS:
            continue
        found.add(word)
    return found


def carries(text: str, question: QuestionAnalysis) -> bool:
    """Whether the sentence holds a value of the asked kind: for numbers, names and lists one the question does
    not already hold (the answer to "How many GPUs did Orion use?" is a number other than any in it)."""
    kind, asked = question.answer_type, question.asked
    if kind is AnswerType.NUMBER:
        return bool(counts(text) - asked)
    if kind is AnswerType.AMOUNT:
        return has_amount(text)
    if kind is AnswerType.DATE:
        return has_date(text)
    if kind in (AnswerType.PERSON, AnswerType.PLACE):
        return bool(names(text) - asked)
    if kind is AnswerType.LIST:
        return enumerates(text) or bool(names(text) - asked)
    return True
