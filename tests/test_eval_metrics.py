"""Evaluation metrics against hand-computed cases."""

import math

import pytest

from service.evaluation.metrics import (
    abstention_scores, best_f1, contains_answer, mrr_at_k, ndcg_at_k, normalize_answer, recall_at_k, squad_f1,
)


def test_ndcg_of_a_perfect_ranking_is_one():
    assert ndcg_at_k(["a", "b", "x"], {"a": 2, "b": 1}, 10) == pytest.approx(1.0)


def test_ndcg_with_the_relevant_document_second():
    # DCG = 1/log2(3); IDCG = 1/log2(2) = 1
    assert ndcg_at_k(["x", "a"], {"a": 1}, 10) == pytest.approx(1 / math.log2(3))


def test_ndcg_uses_graded_gains_and_cuts_at_k():
    # ranking b(1), a(2): DCG = 1 + 2/log2(3); ideal a(2), b(1): IDCG = 2 + 1/log2(3)
    assert ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, 10) == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    assert ndcg_at_k(["x", "a"], {"a": 1}, 1) == 0.0


def test_ndcg_without_relevant_documents_is_zero():
    assert ndcg_at_k(["a"], {}, 10) == 0.0


def test_recall_counts_relevant_documents_in_the_top_k():
    assert recall_at_k(["a", "x", "b", "c"], {"a": 1, "b": 1, "z": 1}, 3) == pytest.approx(2 / 3)
    assert recall_at_k(["x", "a"], {"a": 1}, 1) == 0.0
    assert recall_at_k(["x", "a"], {"a": 0, "b": 1}, 2) == 0.0  # a zero grade is not relevant


def test_mrr_is_the_reciprocal_rank_of_the_first_hit_within_k():
    assert mrr_at_k(["x", "y", "a", "b"], {"a": 1, "b": 1}, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["x", "y", "a"], {"a": 1}, 2) == 0.0


def test_squad_normalisation_drops_case_punctuation_and_articles():
    assert normalize_answer("The  Eiffel-Tower, in Paris!") == "eiffeltower in paris"


def test_squad_f1_by_hand():
    # prediction tokens: in 1066 ad (3); gold: 1066 (1); common 1 → P = 1/3, R = 1 → F1 = 0.5
    assert squad_f1("in 1066 AD", "1066") == pytest.approx(0.5)
    assert squad_f1("the Normans", "Normans") == 1.0
    assert squad_f1("Vikings", "Normans") == 0.0
    assert best_f1("in 1066 AD", ["1066 AD", "1066"]) == pytest.approx(0.8)


def test_contains_answer_matches_whole_normalised_words():
    assert contains_answer("They arrived in 1066, the Normans did.", ["Normans"])
    assert not contains_answer("The Normanshire", ["Normans"])
    assert not contains_answer("", ["Normans"])


def test_abstention_scores_by_hand():
    abstained = [True, True, False, False, True]
    unanswerable = [True, False, True, False, False]
    # TP = 1, predicted 3, actual 2 → P = 1/3, R = 1/2, F1 = 0.4; wrongly abstained 2 of 3 answerable
    scores = abstention_scores(abstained, unanswerable)
    assert scores["precision"] == pytest.approx(1 / 3)
    assert scores["recall"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx(0.4)
    assert scores["wrongly_abstained"] == pytest.approx(2 / 3)


def test_abstention_scores_reject_mismatched_lengths():
    with pytest.raises(ValueError, match="2 decisions for 1"):
        abstention_scores([True, False], [True])
