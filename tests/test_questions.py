"""Question analysis, word matching and what sentences hold: the rules the extractive answerer and abstention share."""

from __future__ import annotations

import pytest

from service.evidence import Sentence, about, lexical_overlap, passage_sentences
from service.generators.base import Passage
from service.mentions import carries, has_amount, has_date, names, numbers
from service.morphology import is_inflected_verb, word_roots
from service.questions import AnswerType, analyse_question, answer_type


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many nodes does the staging cluster have?", AnswerType.NUMBER),
        ("Quantos parâmetros tem o Orion?", AnswerType.NUMBER),
        ("Quantas GPUs foram usadas para treinar o Orion?", AnswerType.NUMBER),
        ("How long do on-call shifts last?", AnswerType.NUMBER),
        ("Quanto tempo dura o treinamento?", AnswerType.NUMBER),
        ("How much does the Plus plan cost?", AnswerType.AMOUNT),
        ("Quanto custa a assinatura mensal do serviço Sirius?", AnswerType.AMOUNT),
        ("Qual é o preço do plano Team?", AnswerType.AMOUNT),
        ("When was Orion released?", AnswerType.DATE),
        ("In what year did the Normans conquer England?", AnswerType.DATE),
        ("Quando o Orion foi lançado?", AnswerType.DATE),
        ("Em que ano o laboratório foi criado?", AnswerType.DATE),
        ("Who led Project Atlas?", AnswerType.PERSON),
        ("Quem criou o laboratório?", AnswerType.PERSON),
        ("Where is my data stored?", AnswerType.PLACE),
        ("Onde fica o laboratório?", AnswerType.PLACE),
        ("Em que cidade fica a segunda equipe?", AnswerType.PLACE),
        ("What are the three environments?", AnswerType.LIST),
        ("Quais são os dois produtos iniciais da linha Aurora?", AnswerType.LIST),
        ("Why are stand-ups written?", AnswerType.OTHER),
        ("Por que as férias são pagas em dobro?", AnswerType.OTHER),
    ],
)
def test_answer_type_in_english_and_portuguese(question: str, kind: AnswerType) -> None:
    assert answer_type(question) is kind


def test_carrying_words_are_entities_and_attributes_never_function_words_or_inflected_verbs() -> None:
    lyra = analyse_question("Quantos parâmetros o Lyra usou no treinamento?")
    assert [t.folded for t in lyra.entities] == ["lyra"]
    assert [t.folded for t in lyra.attributes] == ["parametros", "treinamento"]
    assert "usou" not in {t.folded for t in lyra.carrying}
    gpus = analyse_question("Quantas GPUs foram usadas para treinar o Orion?")
    assert {t.folded for t in gpus.entities} == {"gpus", "orion"}
    assert {t.folded for t in gpus.carrying} == {"gpus", "orion"}  # foram, usadas, treinar carry nothing
    english = analyse_question("How many nodes does the staging cluster have?")
    assert {t.folded for t in english.carrying} == {"nodes", "cluster"}  # staging reads as a verb form: matched, not required


@pytest.mark.parametrize(
    ("a", "b"),
    [("usou", "usando"), ("usou", "usado"), ("treinamento", "treinado"), ("treinar", "treinado"), ("gpus", "gpu"),
     ("trained", "training"), ("parameters", "parametros"), ("documentos", "documento"), ("founded", "founder")],
)
def test_inflected_forms_share_a_root(a: str, b: str) -> None:
    assert word_roots(a) & word_roots(b)


@pytest.mark.parametrize(("a", "b"), [("usou", "custo"), ("nodes", "notes"), ("preco", "parametros"), ("vega", "lyra")])
def test_different_words_share_no_root(a: str, b: str) -> None:
    assert not word_roots(a) & word_roots(b)


def test_verb_forms_by_language() -> None:
    assert is_inflected_verb("usou", "pt") and is_inflected_verb("treinado", "pt") and is_inflected_verb("trained", "en")
    assert not is_inflected_verb("cluster", "en") and not is_inflected_verb("estados", "pt")


def test_lexical_overlap_matches_through_morphology() -> None:
    assert lexical_overlap("Quantos parâmetros o Lyra usou no treinamento?",
                           "O Lyra foi treinado usando 120 milhões de parâmetros.") == 1.0


def test_what_sentences_hold() -> None:
    assert numbers("O portal disponibiliza 2.400 documentos") == {"2.400"}
    assert numbers("We run three environments") == {"three"} and numbers("O time tem três pessoas") == {"tres"}
    assert has_amount("Plus | 200 GB | 3 euros") and has_amount("It costs $12 a month") and has_amount("O plano Free é gratuito")
    assert not has_amount("em 12 idiomas")
    assert has_date("foi lançado em março de 2024") and has_date("every second Monday at 10:00 UTC")
    assert not has_date("O modelo tem 1,3 bilhão de parâmetros")
    assert names("O laboratório foi criado em 2019 por Helena Duarte.") == {"helena", "duarte"}
    assert names("The staging cluster has 12 nodes.") == set()


def test_a_sentence_carries_the_asked_kind_only_with_a_value_the_question_lacks() -> None:
    count = analyse_question("Quantos documentos o portal disponibiliza?")
    assert carries("Hoje o portal disponibiliza 2.400 documentos.", count)
    assert not carries("O Portal de Documentos reúne os manuais de todas as equipes.", count)
    price = analyse_question("Quanto custa a assinatura mensal do serviço Sirius?")
    assert not carries("A assinatura mensal dá acesso à tradução em 12 idiomas.", price)
    when = analyse_question("When was Orion released?")
    assert carries("Orion was released in March 2024.", when) and not carries("Orion is the largest model.", when)
    assert carries("Anything at all.", analyse_question("Why are stand-ups written?"))  # no kind asked


def test_a_sentence_is_about_the_entity_that_opens_it_or_heads_its_section() -> None:
    vega = analyse_question("Quantos parâmetros tem o Vega?")
    own = Sentence(1, "O modelo tem 1,3 bilhão de parâmetros.", context=("Laboratório", "Vega"))
    mentions = Sentence(2, "Ele tem 7 bilhões de parâmetros, cinco vezes mais do que o Vega.", context=("Laboratório", "Orion"))
    assert about(own, vega) == 1.0 and about(mentions, vega) == 0.5
    assert about(Sentence(3, "Nada aqui."), vega) == 0.0


def test_heading_lines_are_context_not_candidates() -> None:
    passage = Passage(1, "Orion\nO Orion tem 7 bilhões de parâmetros.\n\nVega\nO modelo tem 1,3 bilhão de parâmetros.",
                      "Lab", "lab.html", heading_path=("Lab", "Orion"), headings=("Lab", "Orion", "Vega"))
    sentences = passage_sentences([passage])
    assert [(s.text, s.heading) for s in sentences] == [
        ("Orion", True), ("O Orion tem 7 bilhões de parâmetros.", False), ("Vega", True),
        ("O modelo tem 1,3 bilhão de parâmetros.", False),
    ]
    assert sentences[3].context == ("Lab", "Vega")  # the sentence under a heading line sits under that heading
    table_row = passage_sentences([Passage(1, "Plus | 200 GB | 3 euros\nTeam | 2 TB | 12 euros", "FAQ", "faq.html")])
    assert not any(s.heading for s in table_row)
