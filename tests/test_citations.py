"""Citation checks with the real model: a claim is backed by a passage it cites when they agree in meaning and
wording and the passage holds every name and number of the claim (the abstention's own test)."""

from __future__ import annotations

import pytest

from service.citations import SUPPORT_THRESHOLD, verify
from service.evidence import EvidenceScorer
from service.generators.base import Passage

PASSAGES = [
    Passage(1, "The staging cluster has 12 nodes. It runs in the Frankfurt region.", "Ops", "ops.md"),
    Passage(2, "The production cluster has 48 nodes spread over two regions.", "Ops", "ops.md"),
]


@pytest.fixture(scope="module")
def scorer(embedder) -> EvidenceScorer:
    return EvidenceScorer(embedder)


def check(scorer: EvidenceScorer, answer: str):
    return verify(answer, PASSAGES, scorer)


def test_a_right_citation_is_supported(scorer) -> None:
    result = check(scorer, "The staging cluster has 12 nodes [1].")
    assert [c.supported for c in result.claims] == [True]
    assert result.citation_supported == {1: True} and result.unsupported_claims == []


def test_a_claim_with_a_number_its_passage_lacks_is_unsupported_though_it_reads_alike(scorer) -> None:
    result = check(scorer, "The staging cluster has 14 nodes [1].")
    assert result.claims[0].support >= SUPPORT_THRESHOLD  # meaning and wording alone would let it through
    assert result.claims[0].supported is False and result.citation_supported == {1: False}
    assert result.unsupported_claims == ["The staging cluster has 14 nodes."]


def test_a_claim_citing_the_wrong_passage_flags_that_citation(scorer) -> None:
    result = check(scorer, "The staging cluster runs in the Frankfurt region [2].")
    assert result.citation_supported == {2: False} and not result.claims[0].supported
    both = check(scorer, "The staging cluster runs in the Frankfurt region [1][2].")
    assert both.claims[0].supported and both.citation_supported == {1: True, 2: False}


def test_dangling_markers_are_removed_and_uncited_claims_reported(scorer) -> None:
    result = check(scorer, "The staging cluster has 12 nodes [7]. Production has 48 nodes [2].")
    assert result.removed_markers == [7] and "[7]" not in result.text
    assert result.unsupported_claims == ["The staging cluster has 12 nodes."]
    assert result.answer_support < check(scorer, "The staging cluster has 12 nodes [1].").answer_support
