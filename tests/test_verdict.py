"""The verdict's reasons to abstain, on hand-made candidates (no model): each rule fires where it should and
only there, and the reason names what is missing; and how merged passages keep their headings."""

from __future__ import annotations

from indexes.types import Hit
from service.retrieval import merge_hits
from service.evidence import EvidenceWeights, ScoredSentence, passage_sentences
from service.generators.base import Passage
from service.mentions import antonym_swap, counts, negated
from service.questions import analyse_question
from service.verdict import Verdict, judge

WEIGHTS = EvidenceWeights()


def scored(text: str, cosine: float = 0.8, overlap: float = 0.8, carries: bool = True, about: float = 1.0,
           context: tuple[str, ...] = ()) -> ScoredSentence:
    return ScoredSentence(1, text, 1.0, cosine, overlap, carries, about, context)


def verdict(question: str, *sentences: ScoredSentence, passage: str | None = None) -> Verdict:
    text = passage if passage is not None else " ".join(s.text for s in sentences)
    return judge(analyse_question(question), list(sentences), [Passage(1, text, "Doc", "doc.md")], WEIGHTS)


def test_a_well_supported_answer_has_no_reason_to_abstain() -> None:
    v = verdict("How many nodes does the staging cluster have?", scored("The staging cluster has 12 nodes."))
    assert v.reason(0.39) is None


def test_an_entity_no_passage_mentions_is_named() -> None:
    v = verdict("How many nodes does the Recife cluster have?", scored("The staging cluster has 12 nodes."))
    assert v.missing == ("Recife",) and v.reason(0.0) == "no passage mentions 'Recife'"


def test_a_missing_attribute_alone_is_no_reason_but_is_named_when_evidence_is_low() -> None:
    v = verdict("How many employees does the staging cluster have?", scored("The staging cluster has 12 nodes."))
    assert v.unmentioned == ("employees",) and v.reason(0.39) is None
    weak = verdict("How many employees does the staging cluster have?",
                   scored("The staging cluster has 12 nodes.", cosine=0.1, overlap=0.2))
    assert weak.reason(0.39) == "no passage mentions 'employees'"


def test_a_negated_question_over_an_affirmative_sentence_abstains() -> None:
    v = verdict("Who did not sign the treaty?", scored("Rollo signed the treaty with King Charles."))
    assert v.reason(0.0) == "the question is negated and the closest passage is not"
    assert verdict("Who did not sign the treaty?", scored("Rollo did not sign the treaty.")).reason(0.0) is None


def test_an_opposite_is_a_contradiction() -> None:
    v = verdict("Who was the last duke of Normandy?", scored("Rollo was the first duke of Normandy."))
    assert v.reason(0.0) == "the question asks about 'last'; the closest passage says 'first'"
    prefixed = verdict("Unreserved matters are subjects of which parliament?",
                       scored("Reserved matters are subjects outside the parliament's competence."))
    assert prefixed.contradiction and "'unreserved'" in prefixed.contradiction


def test_a_number_of_the_question_missing_from_the_closest_sentence() -> None:
    v = verdict("What country did the Normans invade in 1169?", scored("The Normans invaded England in 1066."),
                passage="The Normans invaded England in 1066. In 1169 they landed at Bannow Bay.")
    assert v.reason(0.0) == "the closest passage does not mention '1169'"
    in_heading = verdict("How many parameters does Orion 2 have?",
                         scored("It has 7 billion parameters.", context=("Orion 2",)),
                         passage="Orion 2\nIt has 7 billion parameters.")
    assert in_heading.reason(0.0) is None  # a number in the sentence's heading counts


def test_no_sentence_about_the_subject_with_the_asked_kind_of_value() -> None:
    price = verdict("Quanto custa a assinatura do serviço Sirius?",
                    scored("A assinatura do Sirius dá acesso a 12 idiomas.", carries=False))
    assert price.reason(0.0) == "no passage about 'Sirius' gives an amount of money"
    elsewhere = verdict("Quanto custa a assinatura do serviço Sirius?",
                        scored("O plano Team custa 12 euros.", carries=True, about=0.0))
    assert elsewhere.absent is not None  # an amount, but not about Sirius


def test_mentions_read_negation_by_language() -> None:
    assert negated("Who did not sign?") and negated("It doesn’t stop") and negated("Quem não assinou?")
    assert not negated("Quantos parâmetros o Lyra usou no treinamento?")  # "no" is "in the" in Portuguese
    assert negated("No team has signed the treaty.") and not negated("No team signed it.")  # a tie: "no" is left out


def test_opposites_and_date_numbers() -> None:
    assert antonym_swap("the last duke", "the first duke") == ("last", "first")
    assert antonym_swap("the first duke", "the first and last duke") is None
    assert antonym_swap("an unlikely outcome", "a likely outcome") == ("unlikely", "likely")
    assert counts("Uma equipe trabalha em Recife desde 2022.") == set()
    assert counts("from 1200 to 1500 GPUs") == {"1200", "1500"}


def _hit(chunk_id: int, ordinal: int, start: int, end: int, text: str, path: tuple[str, ...]) -> Hit:
    return Hit(chunk_id, 1, "c", text, 1.0 - ordinal / 10, "Lab", "lab.html", ordinal, start, end, heading_path=path)


def test_merged_neighbours_keep_the_second_sections_heading_as_a_line() -> None:
    """HTML and Markdown keep headings out of a document's text; a merged passage puts them back in."""
    document = "O Orion tem 7 bilhões de parâmetros.\n\nO modelo tem 1,3 bilhão de parâmetros."
    first, second = document.split("\n\n")
    hits = [_hit(1, 0, 0, len(first), first, ("Lab", "Orion")),
            _hit(2, 1, len(first) + 2, len(document), second, ("Lab", "Vega"))]
    [passage] = merge_hits(hits, lambda _id: document, 6000)
    assert passage.text == f"{first}\n\nVega\n{second}"
    assert passage.headings == ("Lab", "Orion", "Vega")
    sentences = passage_sentences([passage])
    assert [s.heading for s in sentences] == [False, True, False] and sentences[2].context == ("Lab", "Vega")


def test_a_heading_already_in_the_text_is_not_repeated() -> None:
    """A PDF keeps its headings as lines of the text; a heading word inside prose does not count."""
    document = "Ele supera o Vega em tudo.\nVega\nO modelo tem 1,3 bilhão de parâmetros."
    cut = document.index("Vega\nO")
    hits = [_hit(1, 0, 0, cut - 1, document[: cut - 1], ("Orion",)),
            _hit(2, 1, cut, len(document), document[cut:], ("Vega",))]
    [passage] = merge_hits(hits, lambda _id: document, 6000)
    assert passage.text == document
