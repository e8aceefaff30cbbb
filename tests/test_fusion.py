"""Fusion methods: RRF by hand, score normalisation, and the convex combination."""

import pytest

from indexes.fusion import FUSION_METHODS, convex_combination, min_max, reciprocal_rank_fusion, z_scores


def test_rrf_by_hand():
    fused = reciprocal_rank_fusion({"dense": [(1, 0.9), (2, 0.8)], "lexical": [(2, 5.0), (3, 4.0)]}, k=60)
    assert fused[0] == (2, pytest.approx(1 / 62 + 1 / 61))
    assert [i for i, _ in fused] == [2, 1, 3]


def test_min_max_rescales_to_unit_range():
    assert min_max([(1, 10.0), (2, 5.0), (3, 0.0)]) == {1: 1.0, 2: 0.5, 3: 0.0}
    assert min_max([(1, 3.0)]) == {1: 1.0}
    assert min_max([]) == {}


def test_z_scores_centre_and_scale():
    z = z_scores([(1, 3.0), (2, 1.0)])
    assert z[1] == pytest.approx(1.0) and z[2] == pytest.approx(-1.0)


def test_convex_combination_keeps_score_gaps_that_rrf_loses():
    # Lexical is far surer of 7 than of 8; dense barely prefers 8.
    rankings = {"dense": [(8, 0.61), (7, 0.60), (9, 0.1)], "lexical": [(7, 30.0), (8, 2.0), (9, 1.0)]}
    assert convex_combination(rankings, {"dense": 0.5, "lexical": 0.5})[0][0] == 7


def test_convex_combination_gives_an_id_missing_from_a_list_that_lists_floor():
    fused = dict(convex_combination({"dense": [(1, 0.9), (2, 0.5)], "lexical": [(3, 9.0), (1, 1.0)]}, {"dense": 0.5, "lexical": 0.5}))
    assert fused[1] == pytest.approx(0.5 * 1.0 + 0.5 * 0.0)
    assert fused[3] == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)
    assert fused[2] == pytest.approx(0.0)


@pytest.mark.parametrize("name", sorted(FUSION_METHODS))
def test_every_fusion_method_handles_empty_and_one_sided_lists(name):
    method = FUSION_METHODS[name]
    assert method({"dense": [], "lexical": []}, k=60) == []
    assert [i for i, _ in method({"dense": [(4, 0.9), (5, 0.2)], "lexical": []}, k=60)] == [4, 5]


def test_a_single_hit_list_still_ranks_its_hit_above_ids_it_did_not_find():
    from indexes.fusion import min_max_fusion

    fused = min_max_fusion({"dense": [(2, 0.9), (10, 0.5), (11, 0.4)], "lexical": [(10, 5.3)]},
                           weights={"dense": 0.0, "lexical": 1.0})
    assert fused[0][0] == 10
