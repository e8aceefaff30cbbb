"""SIGKILL the real CLI mid-ingest, then run the same command again: the index must come out whole.

Each scenario first ingests the samples (so a vector file exists), changes one of them, then runs
`docqa ingest CORPUS` over the samples plus twelve new files in a subprocess that dies at one kill
point. Documents are committed in discovery order: gen/00 .. gen/11, then the samples, where
handbook.md is the only one changed, so the 13th commit is the handbook's replacement.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ingest.cli as cli
from indexes.schema import fts_table
from indexes.embedded import EmbeddedStore
from indexes.vectors import VectorIndex
from service.cli import app as docqa_app

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
HELPER = TESTS / "crash_ingest.py"
SAMPLES = TESTS.parent / "samples"
TOPICS = ["harbour", "glacier", "orchard", "lighthouse", "quarry", "meadow",
          "volcano", "canal", "prairie", "reef", "tundra", "delta"]
HANDBOOK_ADDITION = "\n## Parking\n\nThe office garage has 40 spaces for bicycles and 6 chargers.\n"


def write_corpus(root: Path) -> list[Path]:
    """Twelve small generated notes plus the samples; returns every file, resolved."""
    (root / "gen").mkdir(parents=True)
    for i, topic in enumerate(TOPICS):
        body = "\n\n".join(
            f"Paragraph {p} of the {topic} note. The {topic} survey team counted {i * 7 + p} markers"
            f" along the {topic} trail and logged them in ledger {topic}-{i}-{p}."
            for p in range(4)
        )
        suffix = ".md" if i % 2 == 0 else ".txt"
        heading = f"# The {topic} note\n\n" if suffix == ".md" else ""
        (root / "gen" / f"{i:02d}-{topic}{suffix}").write_text(heading + body, encoding="utf-8")
    shutil.copytree(SAMPLES, root / "samples", ignore=shutil.ignore_patterns("*.py"))
    return sorted(p.resolve() for p in root.rglob("*") if p.is_file())


@pytest.fixture
def cli_with_session_model(monkeypatch, embedder):
    """Run `docqa` in-process with the session's model: the normal reruns and checks after a kill."""

    def store() -> EmbeddedStore:
        s = EmbeddedStore(cli._State.data_dir, cli._State.spec)
        s.embedders.add(cli._State.spec, embedder)
        return s

    monkeypatch.setattr(cli._State, "store", store)
    runner = CliRunner()

    def docqa(*args) -> tuple[int, str, str]:
        result = runner.invoke(docqa_app, [str(a) for a in args])
        return result.exit_code, result.stdout, result.stderr

    return docqa


@pytest.fixture
def prepared(tmp_path: Path, cli_with_session_model):
    """A data dir holding the ingested samples, and a corpus where handbook.md has since changed."""
    corpus, data = tmp_path / "corpus", tmp_path / "data"
    files = write_corpus(corpus)
    code, _, err = cli_with_session_model("--data-dir", data, "ingest", corpus / "samples", "--workers", "0")
    assert code == 0, err
    handbook = corpus / "samples" / "handbook.md"
    handbook.write_text(handbook.read_text(encoding="utf-8") + HANDBOOK_ADDITION, encoding="utf-8")
    return corpus, data, files


def command(corpus: Path, data: Path) -> list[str]:
    return ["--data-dir", str(data), "ingest", str(corpus), "--workers", "0", "--json"]


def child_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_until_killed(kill_point: str, n: int, cli_args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(HELPER), kill_point, str(n), "--", *cli_args],
        capture_output=True, text=True, timeout=120, env=child_env(), cwd=TESTS.parent,
    )


def kill_from_outside(cli_args: list[str], after_commits: int, log: Path) -> tuple[int, float]:
    """Start the CLI, wait until it has committed a few documents, then SIGKILL it after a random pause."""
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(HELPER), "none", "0", "0.1", "--", *cli_args],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=child_env(), cwd=TESTS.parent,
        )
        watchdog = threading.Timer(120, proc.kill)
        watchdog.start()
        try:
            seen = 0
            for line in proc.stdout:
                seen += line.startswith("@@committed ")
                if seen == after_commits:
                    break
            pause = random.uniform(0.0, 0.08)
            time.sleep(pause)
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
        finally:
            watchdog.cancel()
    return proc.returncode, pause


def assert_consistent(docqa, data: Path, files: list[Path], complete: bool) -> None:
    """`docqa check` passes, no source twice, ids agree; with `complete`, every file is a document."""
    code, out, err = docqa("--data-dir", data, "check", "--json")
    assert code == 0, out + err
    assert json.loads(out)["ok"] is True
    store = EmbeddedStore(data)
    collection = store.catalog.get_collection("default")
    db = store.catalog.db
    duplicates = db.execute("SELECT source, COUNT(*) FROM documents GROUP BY source HAVING COUNT(*) > 1").fetchall()
    assert duplicates == []
    sources = [r[0] for r in db.execute("SELECT source FROM documents ORDER BY source")]
    assert set(sources) <= {str(f) for f in files}
    assert db.execute("SELECT COUNT(*) FROM documents WHERE status != 'ok'").fetchone()[0] == 0
    empty = db.execute(
        "SELECT source FROM documents d WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.document_id = d.id)"
    ).fetchall()
    assert empty == []  # no half documents
    chunk_ids = [int(i) for i in store.catalog.chunk_ids(collection.id)]
    fts_ids = sorted(r[0] for r in db.execute(f"SELECT rowid FROM {fts_table(collection.id)}"))
    assert chunk_ids == fts_ids
    assert [int(i) for i in store.vectors(collection).ids()] == chunk_ids
    if complete:
        assert sources == [str(f) for f in files]
        saved = VectorIndex.load(store.vector_path(collection))
        assert saved.seq == store.catalog.last_seq(collection.id)
        assert [int(i) for i in saved.ids()] == chunk_ids
        handbook = store.catalog.find_document(collection.id, str(next(f for f in files if f.name == "handbook.md")))
        assert "40 spaces for bicycles" in store.catalog.document_text(handbook.id)


def rerun_and_verify(docqa, corpus: Path, data: Path, files: list[Path]) -> dict:
    code, out, err = docqa(*command(corpus, data))
    assert code == 0, out + err
    report = json.loads(out)
    assert report["counts"]["failed"] == 0
    assert sum(report["counts"].values()) == len(files)
    assert_consistent(docqa, data, files, complete=True)
    return report


@pytest.mark.parametrize(
    ("kill_point", "n"),
    [
        ("after-commit", 5),  # gen/04 committed, its vectors only in memory
        ("in-transaction", 1),  # the very first new document, rows written but not committed
        ("in-transaction", 13),  # the handbook's replacement: old rows deleted, new ones written, no COMMIT
        ("before-replace", 1),  # every document committed, the new vector file never put in place
    ],
)
def test_a_kill_at_any_point_is_finished_by_running_the_same_command_again(
    prepared, cli_with_session_model, kill_point: str, n: int
) -> None:
    corpus, data, files = prepared
    vector_file = data / "vectors" / "1.faiss"
    seq_on_disk = VectorIndex.load(vector_file).seq

    killed = run_until_killed(kill_point, n, command(corpus, data))

    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert VectorIndex.load(vector_file).seq == seq_on_disk  # the old file, intact: never half written
    assert_consistent(cli_with_session_model, data, files, complete=False)
    report = rerun_and_verify(cli_with_session_model, corpus, data, files)
    redone = report["counts"]["ingested"] + report["counts"]["replaced"]
    assert redone == {"after-commit": 8, "in-transaction": 14 - n, "before-replace": 0}[kill_point]


def test_an_external_sigkill_mid_ingest_is_finished_by_running_the_same_command_again(
    prepared, cli_with_session_model, tmp_path: Path
) -> None:
    corpus, data, files = prepared

    returncode, pause = kill_from_outside(command(corpus, data), after_commits=2, log=tmp_path / "stderr.txt")

    assert returncode == -signal.SIGKILL, (tmp_path / "stderr.txt").read_text()[-2000:]
    assert_consistent(cli_with_session_model, data, files, complete=False)
    report = rerun_and_verify(cli_with_session_model, corpus, data, files)
    assert report["counts"]["ingested"] + report["counts"]["replaced"] >= 1, f"killed {pause:.3f} s in, too late"
