"""Faults: an unusable data dir at start, a full disk mid-ingest, a hanging generator, SIGKILLs at random moments."""

from __future__ import annotations

import errno
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import indexes.vectors as vectors_module
from service_app import openai_service
from test_crash_safety import (  # noqa: F401 - fixtures used by name
    assert_consistent, child_env, cli_with_session_model, command, kill_from_outside, prepared, rerun_and_verify,
)

ROOT = Path(__file__).resolve().parents[1]
ENTRY = "from service.cli import main; main()"


def docqa_subprocess(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", ENTRY, "--data-dir", str(data_dir), *args], capture_output=True,
                          text=True, timeout=120, env=child_env(), cwd=ROOT)


# Root ignores permission bits, so "unwritable" has to come from the file system itself.
UNUSABLE = {
    "under-a-regular-file": lambda tmp: tmp / "a-file" / "data",
    "in-procfs": lambda tmp: Path("/proc/docqa-test-data"),
}


@pytest.mark.slow
@pytest.mark.parametrize(("where", "args"), [
    ("under-a-regular-file", ("ingest", str(ROOT / "samples"))),
    ("under-a-regular-file", ("serve", "--port", "9")),
    ("in-procfs", ("serve", "--port", "9")),
    ("in-procfs", ("status",)),
])
def test_an_unusable_data_dir_stops_every_command_with_one_line(tmp_path: Path, where: str, args: tuple[str, ...]) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    data_dir = UNUSABLE[where](tmp_path)
    result = docqa_subprocess(data_dir, *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot create data directory") and str(data_dir) in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert (tmp_path / "a-file").read_text() == "not a directory" and not data_dir.exists()


class _OsWithFullDisk:
    """`os` as vectors.py sees it, except that fsync fails the way a full disk does."""

    def __getattr__(self, name: str):
        return getattr(os, name)

    def fsync(self, fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_saving_vectors_leaves_a_consistent_index(prepared, cli_with_session_model, monkeypatch) -> None:
    corpus, data, files = prepared
    docqa = cli_with_session_model
    monkeypatch.setattr(vectors_module, "os", _OsWithFullDisk())

    code, out, err = docqa(*command(corpus, data))

    assert code == 2 and "cannot write vector index" in err and "No space left on device" in err, out + err
    assert "Traceback" not in err
    assert not list((data / "vectors").glob("*.tmp")), "a temp file was left behind"
    monkeypatch.undo()
    assert_consistent(docqa, data, files, complete=False)  # the old vector file plus catch-up from the catalog
    report = rerun_and_verify(docqa, corpus, data, files)
    assert report["counts"]["ingested"] == 0  # every document had been committed before the disk filled


@pytest.fixture
def hanging_generator_app(tmp_path: Path, embedder):
    with openai_service(tmp_path / "data", embedder, ["slow"], timeout=0.5, retries=1) as app:
        yield app


def test_a_hanging_generator_gives_502_while_search_and_health_stay_fast(hanging_generator_app) -> None:
    client, fake = hanging_generator_app
    outcome: dict = {}

    def ask() -> None:
        started = time.perf_counter()
        outcome["response"] = client.post("/v1/ask", json={"question": "How many nodes has the staging cluster?"})
        outcome["seconds"] = time.perf_counter() - started

    asking = threading.Thread(target=ask)
    asking.start()
    time.sleep(0.1)
    slowest = 0.0
    while asking.is_alive():
        for call in (lambda: client.get("/healthz"), lambda: client.post("/v1/search", json={"query": "staging nodes"})):
            started = time.perf_counter()
            assert call().status_code == 200
            slowest = max(slowest, time.perf_counter() - started)
    asking.join()
    response = outcome["response"]
    assert response.status_code == 502, response.text
    assert "timed out" in response.json()["detail"] and "after 2 attempts" in response.json()["detail"]
    assert outcome["seconds"] < 5  # 2 attempts x 0.5 s timeout, plus backoff and retrieval
    assert len(fake.requests) == 2
    assert slowest < 1.0, f"search/healthz took {slowest:.2f} s while the generator hung"


@pytest.mark.slow
def test_sigkills_at_random_moments_never_lose_or_duplicate_a_document(prepared, cli_with_session_model, tmp_path: Path) -> None:
    """A reduced benchmarks/crash.py: three kills at random commit counts and pauses, each rerun partly."""
    corpus, data, files = prepared
    rng = random.Random(int(os.environ.get("DOCQA_CRASH_SEED", "7")))
    for kill in range(3):
        returncode, pause = kill_from_outside(command(corpus, data), after_commits=rng.randint(1, 4), log=tmp_path / f"kill{kill}.txt")
        assert returncode == -9, (tmp_path / f"kill{kill}.txt").read_text()[-2000:]
        assert_consistent(cli_with_session_model, data, files, complete=False)
    rerun_and_verify(cli_with_session_model, corpus, data, files)
    code, out, _ = cli_with_session_model("--data-dir", data, "check", "--json")
    assert code == 0 and json.loads(out)["ok"] is True
