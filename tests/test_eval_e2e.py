"""`docqa eval qa` end to end on a small SQuAD 2.0 subset: the real model, the real answerer, the JSON shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def small_squad(tmp_path_factory: pytest.TempPathFactory, shared) -> Path:
    """The first 12 paragraphs of the first two articles, as a SQuAD 2.0 file."""
    squad = shared("eval", "squad-v2.0-dev-half", "dev-v2.0.json")
    data = json.loads(squad.read_text(encoding="utf-8"))
    data["data"] = [dict(a, paragraphs=a["paragraphs"][:12]) for a in data["data"][:2]]
    path = tmp_path_factory.mktemp("squad") / "small.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scratch index and embedding cache for the module: the second run re-embeds nothing."""
    return tmp_path_factory.mktemp("eval-work")


@pytest.mark.slow
def test_eval_qa_reports_every_mode_answers_and_abstention(small_squad: Path, work_dir: Path, tmp_path: Path):
    result = runner.invoke(app, [
        "--data-dir", str(tmp_path / "data"), "eval", "qa", "--squad", str(small_squad), "--limit", "60", "--json",
        "--work-dir", str(work_dir), "--min", "retrieval.hybrid.recall@5=0.85",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["questions"] == 60
    assert set(report["retrieval"]) == {"dense", "lexical", "hybrid"}
    # scored over the answerable questions (the unanswerable have no passage to find), and over all of them
    from service.evaluation.datasets import load_squad
    from service.evaluation.harness import subset

    asked = subset(load_squad(small_squad), 60).questions
    assert report["answerable_questions"] == sum(not q.impossible for q in asked) < 60
    for metrics in report["retrieval"].values():
        answerable = {k: v for k, v in metrics.items() if k != "all_questions"}
        for figures in (answerable, metrics["all_questions"]):
            assert {"recall@1", "recall@5", "mrr@10", "ndcg@10"} <= set(figures)
            assert all(0.0 <= v <= 1.0 for v in figures.values())
        assert answerable != metrics["all_questions"]
    hybrid = report["retrieval"]["hybrid"]
    assert hybrid["recall@1"] >= 0.7
    assert hybrid["recall@5"] >= max(report["retrieval"]["dense"]["recall@5"], report["retrieval"]["lexical"]["recall@5"]) - 0.05
    for section in ("answers", "abstention"):
        assert all(0.0 <= v <= 1.0 for k, v in report[section].items() if k != "questions")
    assert report["config"]["retrieval"]["mode"] == "hybrid"


@pytest.mark.slow
def test_eval_min_gate_fails_below_the_floor(small_squad: Path, work_dir: Path, tmp_path: Path):
    result = runner.invoke(app, [
        "--data-dir", str(tmp_path / "data"), "eval", "qa", "--squad", str(small_squad), "--limit", "10",
        "--no-answers", "--modes", "lexical", "--work-dir", str(work_dir), "--min", "retrieval.lexical.recall@100=1.01",
    ])
    assert result.exit_code == 1
    assert "below floor" in result.output


@pytest.mark.slow
def test_eval_precision_builds_its_own_index_at_that_precision(small_squad: Path, tmp_path: Path):
    """`--set precision=bf16` embeds the scratch index in bf16 (the collection records it) and keys it apart from
    the fp32 one, so the two are never mixed up in one work dir."""
    from indexes.backends import open_store

    reports = {}
    for precision in ("fp32", "bf16"):
        result = runner.invoke(app, [
            "--data-dir", str(tmp_path / "data"), "eval", "qa", "--squad", str(small_squad), "--limit", "20",
            "--modes", "dense", "--no-answers", "--json", "--work-dir", str(tmp_path / "work"),
            "--set", f"precision={precision}",
        ])
        assert result.exit_code == 0, result.output
        reports[precision] = json.loads(result.stdout)
        assert reports[precision]["config"]["precision"] == precision
    indexes = sorted((tmp_path / "work").glob("index-*"))
    assert len(indexes) == 2
    recorded = {open_store(None, folder / "data").get_collection("eval").embedder["precision"] for folder in indexes}
    assert recorded == {"fp32", "bf16"}
    dense = {p: r["retrieval"]["dense"]["recall@5"] for p, r in reports.items()}
    assert abs(dense["fp32"] - dense["bf16"]) <= 0.1, dense
