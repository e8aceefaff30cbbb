"""`docqa eval qa --feedback` end to end: the real CLI ingests the samples and a few notes, the service answers and
people rate the answers over its API, and the replay (the real CLI again, the real model) passes while the cited
documents still rank, keeps passing when one is re-ingested with its fact kept, and fails its `--min` floor once a
cited document is removed and another replaced by a note on another subject."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.cli import app as cli
from service_app import make_app

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
NOTES = {
    "greenhouse.md": "# Greenhouse\n\nThe greenhouse sensors report humidity every 90 seconds.\n",
    "parking.md": "# Parking\n\nThe parking garage closes at ten in the evening.\n",
    "badges.md": "# Badges\n\nLost badges are replaced at the front desk within one day.\n",
    "printers.md": "# Printers\n\nThe third-floor printer prints double-sided by default.\n",
}
GPUS = "How many GPUs was the Atlas model trained on?"
HUMIDITY = "How often do the greenhouse sensors report humidity?"
DATA = "Where is my data stored?"
runner = CliRunner()


def docqa(data: Path, *args: str) -> object:
    return runner.invoke(cli, ["--data-dir", str(data), *args])


def replay(data: Path, floor: str = "1.0") -> tuple[int, dict, str]:
    result = docqa(data, "eval", "qa", "--feedback", "default", "--json", "--min", f"feedback.pass_rate={floor}")
    return result.exit_code, json.loads(result.stdout), result.output


@pytest.fixture(scope="module")
def rated(tmp_path_factory: pytest.TempPathFactory, embedder) -> tuple[Path, Path, dict[str, str]]:
    """(docs folder, data dir, answer id per question): three questions answered by the service, two rated up, one
    down with a comment."""
    root = tmp_path_factory.mktemp("feedback-eval")
    docs = root / "docs"
    shutil.copytree(SAMPLES, docs, ignore=shutil.ignore_patterns("*.py"))
    for name, text in NOTES.items():
        (docs / name).write_text(text, encoding="utf-8")
    data = root / "data"
    result = docqa(data, "ingest", str(docs))
    assert result.exit_code == 0, result.output
    ids = {}
    with TestClient(make_app(data, embedder)) as client:
        for question, rating, comment in ((GPUS, "up", None), (HUMIDITY, "up", "exactly right"),
                                          (DATA, "down", "it should name the backup site too")):
            asked = client.post("/v1/ask", json={"question": question}).json()
            assert not asked["abstained"], asked
            ids[question] = asked["answer_id"]
            body = {"rating": rating, "comment": comment} if comment else {"rating": rating}
            assert client.post(f"/v1/answers/{asked['answer_id']}/feedback", json=body).status_code == 201
        client.post("/v1/ask", json={"question": "Who led Project Atlas?"})  # answered, never rated: not replayed
    return docs, data, ids


def test_the_replay_passes_catches_a_removed_and_a_rewritten_document_and_fails_its_floor(rated) -> None:
    docs, data, ids = rated
    code, report, output = replay(data)
    assert code == 0, output
    counts = report["feedback"]
    assert (counts["rated"], counts["up"], counts["down"], counts["replayed"], counts["passed"]) == (3, 2, 1, 2, 2)
    assert counts["pass_rate"] == 1.0 and report["failures"] == []
    [review] = report["review"]
    assert (review["answer_id"], review["question"]) == (ids[DATA], DATA) and review["answer"]
    assert review["feedback"] == [{"rating": "down", "comment": "it should name the backup site too", "key_id": None}]

    # re-ingested with its fact kept: a new version of the same document, still cited, still passing
    (docs / "greenhouse.md").write_text(NOTES["greenhouse.md"] + "\nThe vents open above 28 degrees.\n", encoding="utf-8")
    assert docqa(data, "ingest", str(docs)).exit_code == 0
    code, report, output = replay(data)
    assert code == 0 and report["feedback"]["pass_rate"] == 1.0, output

    # the cited report removed, the greenhouse note replaced by one on another subject: both regressions caught (a
    # document that lost its fact but still ranks for the question would pass: the gate is retrieval's)
    removed = docqa(data, "remove", str(docs / "atlas-report.pdf"))  # a document is named by its source
    assert removed.exit_code == 0, removed.output
    (docs / "atlas-report.pdf").unlink()
    (docs / "greenhouse.md").write_text("# Kitchen\n\nThe dishwasher in the kitchen runs at noon.\n", encoding="utf-8")
    assert docqa(data, "ingest", str(docs)).exit_code == 0
    code, report, output = replay(data, "0.9")
    assert code == 1 and "below floor" in output and "feedback.pass_rate = 0.0000 < 0.9" in output
    assert report["feedback"]["pass_rate"] == 0.0 and report["feedback"]["passed"] == 0
    failures = {f["answer_id"]: f for f in report["failures"]}
    assert set(failures) == {ids[GPUS], ids[HUMIDITY]}
    assert [Path(d["source"]).name for d in failures[ids[GPUS]]["missing"]] == ["atlas-report.pdf"]
    assert [Path(d["source"]).name for d in failures[ids[HUMIDITY]]["missing"]] == ["greenhouse.md"]
    assert "atlas-report.pdf" not in {Path(h["source"]).name for h in failures[ids[GPUS]]["found"]}

    table = docqa(data, "eval", "qa", "--feedback", "default")  # the same for people: summary, failures, review
    assert table.exit_code == 0 and "thumbs-up answers whose cited documents left the top 5" in table.output
    assert "thumbs-down answers to review" in table.output and "backup" in table.output


def test_a_floor_with_nothing_rated_fails_saying_so_and_bad_arguments_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    note = tmp_path / "docs" / "parking.md"
    note.parent.mkdir()
    note.write_text(NOTES["parking.md"], encoding="utf-8")
    assert docqa(data, "ingest", str(note.parent)).exit_code == 0
    code, report, output = replay(data)
    assert code == 1 and report["feedback"]["pass_rate"] is None
    assert "no thumbs-up answer with a cited document to replay" in output
    lexical = docqa(data, "eval", "qa", "--feedback", "default", "--json", "--set", "mode=lexical")
    assert lexical.exit_code == 0 and json.loads(lexical.stdout)["config"]["retrieval"]["mode"] == "lexical"
    assert docqa(data, "eval", "qa", "--feedback", "nowhere").exit_code == 2
    assert docqa(data, "eval", "qa").exit_code == 2  # neither --squad nor --feedback
    refused = docqa(data, "eval", "qa", "--feedback", "default", "--set", "model=other")
    assert refused.exit_code == 2 and "retrieval and reranker" in refused.output
