"""One source of settings: each family, set in `.env`, reaches both the `docqa` command and `docqa serve`, and
flags outrank the environment, which outranks `.env`, which outranks the defaults.

Everything runs for real: the `docqa` command and `docqa serve` as subprocesses in a folder holding a `.env`
(their working directory), the bundled model, the embedded store.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from indexes.embedded import EmbeddedStore
from server import ENTRY, DocqaServer, docqa_environment, wait_for_job

from service.settings import Settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TEXT_LIMIT = 3000
DOTENV = f"""\
# one setting per family, each away from its default
DOCQA_DATA_DIR=from-dotenv
DOCQA_DEFAULT_COLLECTION=racks
DOCQA_EMBEDDER__PRECISION=bf16
DOCQA_RETRIEVAL__TOP_K=2
DOCQA_RETRIEVAL__MODE=lexical
DOCQA_LIMITS__MAX_TEXT_CHARS={TEXT_LIMIT}
"""
QUERY = "staging cluster rack"
RACKS = ["amber", "birch", "cedar", "dune", "ember", "fjord"]


def write_documents(folder: Path) -> None:
    """notes.md: a short section per rack, each mentioning the query's words (within the text limit);
    long.md: past the text limit."""
    folder.mkdir(parents=True)
    notes = "\n\n".join(
        f"# The {rack} rack\n\nThe staging cluster keeps its {rack} rack in hall {i}. The {rack} rack holds"
        f" {4 + i} nodes, and the on-call engineer checks its power supply every {i + 2} days."
        for i, rack in enumerate(RACKS)
    )
    assert len(notes) < TEXT_LIMIT
    (folder / "notes.md").write_text(notes, encoding="utf-8")
    long = " ".join(f"Line {i} of a long report that says nothing about any rack." for i in range(80))
    assert len(long) > TEXT_LIMIT
    (folder / "long.md").write_text(long, encoding="utf-8")


def docqa(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real `docqa` command, run in `cwd` (so `.env` there is read), without the caller's DOCQA_* variables."""
    return subprocess.run([sys.executable, "-c", ENTRY, *args], cwd=cwd, env=docqa_environment(env),
                          capture_output=True, text=True, timeout=600)


def docqa_json(cwd: Path, *args: str, codes: tuple[int, ...] = (0,), env: dict[str, str] | None = None) -> dict[str, Any]:
    """`docqa ... --json`, which must exit with one of `codes`; its JSON, with the exit code as `exit_code`."""
    result = docqa(cwd, *args, "--json", env=env)
    assert result.returncode in codes, (result.stdout, result.stderr)
    return {**json.loads(result.stdout), "exit_code": result.returncode}


@dataclass
class Observed:
    """What the command and the service did in a folder whose `.env` is DOTENV."""

    folder: Path
    cli_ingest: dict[str, Any]
    cli_search: dict[str, Any]
    cli_status: dict[str, Any]
    service_search: dict[str, Any]
    service_collection: dict[str, Any]
    service_job: dict[str, Any]


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Observed:
    """DOTENV in a fresh folder; `docqa ingest` and `search` there, then `docqa serve` (no flags) there: a
    search, a new collection, an upload; then `docqa status`."""
    folder = tmp_path_factory.mktemp("dotenv")
    (folder / ".env").write_text(DOTENV)
    write_documents(folder / "docs")
    cli_ingest = docqa_json(folder, "ingest", "docs", "--workers", "0", codes=(0, 1))  # 1: a file failed
    cli_search = docqa_json(folder, "search", QUERY)
    with DocqaServer(folder, options=[]) as server, httpx.Client(base_url=server.base_url, timeout=60) as client:
        found = client.post("/v1/search", json={"query": QUERY})
        assert found.status_code == 200, found.text
        created = client.post("/v1/collections", json={"name": "uploads"})
        assert created.status_code == 201, created.text
        files = [("files", (p.name, p.read_bytes())) for p in sorted((folder / "docs").iterdir())]
        submitted = client.post("/v1/collections/uploads/documents", files=files)
        assert submitted.status_code == 202, submitted.text
        job = wait_for_job(client, submitted.json()["id"])
    cli_status = docqa_json(folder, "status")  # after the service: what it wrote, the command reads
    return Observed(folder, cli_ingest, cli_search, cli_status, found.json(), created.json(), job)


def outcomes(results: list[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    """file name -> (status, reason)."""
    return {Path(r["source"]).name: (r["status"], r["reason"]) for r in results}


def test_the_data_dir_in_dotenv_is_where_the_command_and_the_service_write(observed: Observed) -> None:
    store = observed.folder / "from-dotenv"
    assert (store / "catalog.sqlite3").is_file()
    assert not (observed.folder / "data").exists()  # the default, and what `serve` used to export
    collections = {c["collection"]: c for c in observed.cli_status["collections"]}
    assert set(collections) == {"racks", "uploads"}
    # the service's upload is in the store the command reads (long.md is recorded as failed)
    assert (collections["uploads"]["documents"], collections["uploads"]["failed"]) == (1, 1)
    assert sorted(p.name for p in (store / "uploads").rglob("*.md")) == ["long.md", "notes.md"]


def test_the_embedder_in_dotenv_builds_the_commands_and_the_services_collections(observed: Observed) -> None:
    default = next(c for c in observed.cli_status["collections"] if c["collection"] == "racks")
    assert default["embedder"]["precision"] == "bf16"  # made by `docqa ingest`
    assert observed.service_collection["embedder"]["precision"] == "bf16"


def test_the_default_collection_in_dotenv_is_where_the_command_ingests_and_what_the_service_searches(
    observed: Observed,
) -> None:
    assert observed.cli_ingest["collection"] == "racks"  # `docqa ingest docs`, no --collection
    assert observed.service_search["hits"] and all(h["source"].endswith("notes.md") for h in observed.service_search["hits"])


def test_retrieval_in_dotenv_sets_how_many_hits_and_how_both_rank_them(observed: Observed) -> None:
    for side, hits in (("docqa search", observed.cli_search["hits"]), ("/v1/search", observed.service_search["hits"])):
        assert len(hits) == 2, side  # of six matching chunks
        assert all(set(h["scores"]) == {"lexical"} for h in hits), side
        assert all("staging cluster" in h["text"] for h in hits), side
    assert observed.cli_search["mode"] == observed.service_search["mode"] == "lexical"


def test_a_limit_in_dotenv_refuses_the_same_file_in_the_command_and_the_service(observed: Observed) -> None:
    assert observed.cli_ingest["exit_code"] == 1
    for side, results in (("docqa ingest", observed.cli_ingest["results"]), ("upload", observed.service_job["files"])):
        found = outcomes(results)
        assert found["notes.md"] == ("ingested", None), side
        status, reason = found["long.md"]
        assert status == "failed" and reason.startswith("too much text:") and f"(limit {TEXT_LIMIT})" in reason, side


def test_flags_outrank_the_environment_which_outranks_dotenv(observed: Observed) -> None:
    folder, env = observed.folder, {"DOCQA_DATA_DIR": "from-env", "DOCQA_RETRIEVAL__TOP_K": "3"}
    docqa_json(folder, "status", env=env)
    assert (folder / "from-env" / "catalog.sqlite3").is_file()
    docqa_json(folder, "--data-dir", "from-flag", "status", env=env)
    assert (folder / "from-flag" / "catalog.sqlite3").is_file()
    env["DOCQA_DATA_DIR"] = "from-dotenv"  # where the documents are
    assert len(docqa_json(folder, "search", QUERY, env=env)["hits"]) == 3
    flagged = docqa_json(folder, "search", QUERY, "-k", "4", "--mode", "hybrid", env=env)
    assert len(flagged["hits"]) == 4 and all({"dense", "lexical"} <= set(h["scores"]) for h in flagged["hits"])


def test_a_bad_value_in_dotenv_is_one_clear_error_naming_the_variable(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DOCQA_RETRIEVAL__TOP_K=many\n")
    result = docqa(tmp_path, "status")
    assert result.returncode == 2
    assert "DOCQA_RETRIEVAL__TOP_K" in result.stderr and "'many'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_a_bad_generator_setting_is_named_without_showing_the_sections_secrets(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DOCQA_GENERATOR__OPENAI__API_KEY=sk-do-not-print\nDOCQA_GENERATOR__OPENAI__TIMEOUT=-1\n")
    result = docqa(tmp_path, "status")
    assert result.returncode == 2
    assert "DOCQA_GENERATOR__OPENAI__TIMEOUT" in result.stderr and "greater than 0" in result.stderr
    assert "sk-do-not-print" not in result.stderr + result.stdout


def test_reranker_settings_are_read_once_and_a_bad_one_is_named_without_its_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DOCQA_RERANKER__MODEL", "bge-reranker-base")
    monkeypatch.setenv("DOCQA_RERANKER__BACKEND", "http")
    monkeypatch.setenv("DOCQA_RERANKER__API", "tei")
    monkeypatch.setenv("DOCQA_RERANKER__CANDIDATES", "12")
    monkeypatch.setenv("DOCQA_ABSTENTION__MIN_RERANK", "0.25")
    settings = Settings(_env_file=None)
    assert (settings.reranker.model, settings.reranker.backend, settings.reranker.api, settings.reranker.candidates) == (
        "bge-reranker-base", "http", "tei", 12)
    assert settings.reranker.enabled and settings.abstention.min_rerank == 0.25
    monkeypatch.delenv("DOCQA_RERANKER__MODEL")
    assert not Settings(_env_file=None).reranker.enabled  # off while no model is set
    (tmp_path / ".env").write_text("DOCQA_RERANKER__API_KEY=sk-do-not-print\nDOCQA_RERANKER__CANDIDATES=0\n")
    result = docqa(tmp_path, "status")
    assert result.returncode == 2
    assert "DOCQA_RERANKER__CANDIDATES" in result.stderr and "greater than 0" in result.stderr
    assert "sk-do-not-print" not in result.stderr + result.stdout


def test_serve_honours_the_global_flags_over_dotenv_in_every_worker(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(DOTENV)
    options = ["--data-dir", "from-flag", "--precision", "fp32"]
    with DocqaServer(tmp_path, env={"DOCQA_WORKERS": "2"}, options=options, startup_timeout=240) as server:
        def create(i: int) -> dict[str, Any]:  # a connection each, so the kernel may hand it to either worker
            response = httpx.post(f"{server.base_url}/v1/collections", json={"name": f"c{i}"}, timeout=120)
            assert response.status_code == 201, response.text
            return response.json()

        with ThreadPoolExecutor(4) as pool:
            created = list(pool.map(create, range(16)))
    assert {c["embedder"]["precision"] for c in created} == {"fp32"}
    store = EmbeddedStore(tmp_path / "from-flag")
    assert {f"c{i}" for i in range(16)} <= {c.name for c in store.list_collections()}
    store.close()
    assert not (tmp_path / "from-dotenv").exists()
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    creators = {e["pid"] for e in lines if e.get("msg") == "request" and e.get("path") == "/v1/collections"}
    assert len(creators) == 2, "both workers created collections"
