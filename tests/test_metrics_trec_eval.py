"""docqa's ranking metrics against trec_eval's own (pytrec_eval): on a real BEIR run docqa's retrieval produces
over a slice of ArguAna, and on random graded judgements (ArguAna's are all grade 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytrec_eval
from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.evaluation.datasets import EvalSet, load_beir
from service.evaluation.harness import EvalConfig, build_index, ranked_documents, retrieval_metrics
from service.evaluation.metrics import mrr_at_k, ndcg_at_k, recall_at_k
from indexes.search import MODES

ARGUANA = Path(__file__).resolve().parents[2] / "shared" / "eval" / "beir-arguana"
QUERIES = 12
TREC_MEASURES = {"ndcg_cut.10", "recall.1,5,10,100"}


def trec_eval(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """trec_eval's figures per query, named as docqa's: rank i gets score -i, so trec_eval keeps docqa's order
    (it sorts by score and breaks ties by document id); MRR@10 is recip_rank over the top 10 alone."""
    run = {q: {d: float(-i) for i, d in enumerate(ranked)} for q, ranked in rankings.items()}
    top10 = {q: {d: float(-i) for i, d in enumerate(ranked[:10])} for q, ranked in rankings.items()}
    scores = pytrec_eval.RelevanceEvaluator(qrels, TREC_MEASURES).evaluate(run)
    reciprocal = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    return {
        q: {"ndcg@10": s["ndcg_cut_10"], "mrr@10": reciprocal[q]["recip_rank"],
            **{f"recall@{k}": s[f"recall_{k}"] for k in (1, 5, 10, 100)}}
        for q, s in scores.items()
    }


def docqa(ranked: list[str], relevant: dict[str, int]) -> dict[str, float]:
    """docqa's figures for one query."""
    return {"ndcg@10": ndcg_at_k(ranked, relevant, 10), "mrr@10": mrr_at_k(ranked, relevant, 10),
            **{f"recall@{k}": recall_at_k(ranked, relevant, k) for k in (1, 5, 10, 100)}}


@pytest.fixture(scope="module")
def arguana_slice() -> EvalSet:
    """Twelve judged queries spread over ArguAna, over every argument of their debates (~180: the counter-argument
    that is relevant and a dozen others on the same motion)."""
    if not ARGUANA.exists():
        pytest.skip(f"{ARGUANA} is not here")
    full = load_beir(ARGUANA)
    questions = full.questions[:: len(full.questions) // QUERIES][:QUERIES]
    debates = {q.qid.rsplit("-", 1)[0] for q in questions}  # test-environment-aeghhgwpe-pro02a: its debate, its side
    documents = {k: v for k, v in full.documents.items() if k.rsplit("-", 1)[0] in debates}
    assert all(d in documents for q in questions for d in full.qrels[q.qid])
    return EvalSet("arguana-slice", documents, questions, {q.qid: full.qrels[q.qid] for q in questions})


@pytest.mark.slow
def test_docqa_metrics_equal_trec_evals_on_a_real_arguana_run(arguana_slice: EvalSet, tmp_path: Path):
    config = EvalConfig()
    index = build_index(arguana_slice, config, tmp_path / "work", beir=True)
    pipeline = config.pipeline(index.store)
    try:
        for mode in MODES:
            rankings = {q.qid: ranked_documents(pipeline, index, q, mode, drop_self=True) for q in arguana_slice.questions}
            assert all(rankings.values()), mode
            expected = trec_eval(rankings, arguana_slice.qrels)
            assert set(expected) == set(rankings)
            for qid, ranked in rankings.items():
                ours = docqa(ranked, arguana_slice.qrels[qid])
                assert ours == pytest.approx(expected[qid], abs=1e-9, rel=0), (mode, qid)
            means = retrieval_metrics(list(rankings.values()), [arguana_slice.qrels[q] for q in rankings])
            for name in ("ndcg@10", "mrr@10", "recall@1", "recall@5", "recall@10", "recall@100"):
                trec_mean = sum(e[name] for e in expected.values()) / len(expected)
                assert means[name] == pytest.approx(trec_mean, abs=1e-9, rel=0), (mode, name)
            # The run is not trivial: some hits, some misses at the top.
            assert 0 < means["recall@1"] < 1 and 0 < means["ndcg@10"] < 1, (mode, means)
    finally:
        index.store.close()


DOCS = [f"d{i}" for i in range(30)]


@settings(max_examples=300, deadline=None)
@given(
    ranked=st.lists(st.sampled_from(DOCS), min_size=1, max_size=25, unique=True),
    grades=st.dictionaries(st.sampled_from(DOCS), st.integers(0, 3), min_size=1, max_size=12),
)
@example(ranked=DOCS[:12], grades={"d10": 1})  # the first hit just past the cut-off of MRR@10 and recall@10
@example(ranked=DOCS[:3], grades={"d0": 0, "d29": 2})  # a zero grade retrieved, the relevant document not
def test_docqa_metrics_equal_trec_evals_with_graded_judgements(ranked: list[str], grades: dict[str, int]):
    ours = docqa(ranked, grades)
    expected = trec_eval({"q": ranked}, {"q": grades})["q"]
    assert ours == pytest.approx(expected, abs=1e-9, rel=0)
