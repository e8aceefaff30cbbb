"""How text is analysed for BM25: folded, stemmed in its language (English or Portuguese), and questions the same way."""

from __future__ import annotations

import threading
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from indexes.lexical import (
    analyse, bounded_stems, fold, fts_body, match_expression, query_language, query_terms, word_stems,
)


def test_english_text_is_folded_then_stemmed_in_english() -> None:
    assert query_language("The Rotations were scheduled weekly") == "en"
    assert analyse("The Rotations were scheduled weekly") == "the rotat were schedul week"
    assert analyse("the rotation is scheduling") == "the rotat is schedul"


def test_portuguese_text_is_folded_then_stemmed_in_portuguese() -> None:
    assert query_language("As férias são marcadas pelos gestores") == "pt"
    assert analyse("As férias são marcadas pelos gestores") == "as fer sao marc pel gestor"
    # singular or plural, with or without accents: the same stems
    assert analyse("a ferias foi marcada pelo gestor") == "a fer foi marc pel gestor"


def test_a_portuguese_question_matches_other_forms_of_its_words() -> None:
    assert match_expression("Quando as férias são marcadas?") == '"fer" OR "marc"'
    assert match_expression("Which rotations are scheduled?") == '"rotat" OR "schedul"'


def test_a_question_whose_language_cannot_be_told_tries_each_word_and_its_english_and_portuguese_stems() -> None:
    assert query_language("vacation policies") is None
    assert match_expression("vacation policies") == '"vacation" OR "vacat" OR "policies" OR "polici" OR "polic"'
    assert analyse("ferias marcadas") == "ferias feria fer marcadas marcada marc"


def test_stop_words_only_give_no_expression_and_fts_syntax_never_leaks() -> None:
    assert match_expression("what is the") is None
    assert match_expression('NEAR(" OR *)') == '"near"'


def test_headings_are_indexed_before_the_text_and_stemmed_with_it() -> None:
    assert fts_body("The rotations were scheduled", ("On-call", "Rotations")) == "on call rotat the rotat were schedul"
    assert fts_body("As férias são marcadas", ("Férias",)) == "fer as fer sao marc"
    # a text whose language can't be told is stemmed in the language of its headings and text together
    assert fts_body("vacation policies", ("The rotations",)) == "the rotat vacat polici"


def test_query_terms_stay_unstemmed_for_the_evidence_scorer() -> None:
    assert query_terms("Which rotations are scheduled?") == ["rotations", "scheduled"]
    assert word_stems("rotations") == frozenset({"rotat", "rotations"})


def test_stemming_from_many_threads_gives_the_same_stems() -> None:
    text = "As férias são marcadas pelos gestores das equipes " * 20
    expected = analyse(text)
    results: list[str] = []

    def work() -> None:
        for _ in range(200):
            results.append(analyse(text))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 1600 and set(results) == {expected}


def test_a_repeated_word_is_asked_once_per_occurrence() -> None:
    assert match_expression("Do tariffs hurt the trade, and do tariffs raise prices?") == (
        '"tariff" OR "hurt" OR "trade" OR "tariff" OR "rais" OR "price"'
    )


@given(st.text())
def test_fold_lowers_and_strips_diacritics_with_or_without_its_ascii_shortcut(text: str) -> None:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    assert fold(text) == "".join(c for c in decomposed if not unicodedata.combining(c))


def test_a_query_within_the_row_budget_is_asked_whole() -> None:
    stems = ["war", "year", "war", "start"]
    assert bounded_stems(stems, {"war": 40, "year": 50, "start": 10}, budget=100) == stems


def test_over_the_budget_the_rarest_terms_are_kept_while_their_rows_fit_repeats_and_order_kept() -> None:
    stems = ["year", "war", "napoleon", "war", "start"]
    counts = {"year": 900, "war": 60, "napoleon": 5, "start": 400}
    assert bounded_stems(stems, counts, budget=100) == ["war", "napoleon", "war"]  # 5 + 60 fit, + 400 would not
    assert bounded_stems(stems, counts, budget=500) == ["war", "napoleon", "war", "start"]
    # the rarest term is kept even when it alone is over the budget; a term no row holds costs nothing
    assert bounded_stems(["year", "start"], counts, budget=100) == ["start"]
    assert bounded_stems(["year", "zyzzyva", "start"], counts, budget=100) == ["zyzzyva"]
    assert bounded_stems(["year", "zyzzyva"], {"year": 900}, budget=100) == ["zyzzyva"]


def test_terms_as_rare_as_each_other_are_kept_in_the_order_the_query_gives_them() -> None:
    assert bounded_stems(["b", "a", "c"], {"a": 60, "b": 60, "c": 60}, budget=100) == ["b"]
