"""The batch CLI in-process (typer's CliRunner): exit codes and the JSON scripts rely on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import indexes.store as store_module
import ingest.cli as cli
from indexes.embedders import EmbedderIdentity
from indexes.schema import fts_table
from indexes.embedded import EmbeddedStore
from indexes.vectors import VectorIndex
from service.cli import app as docqa_app

runner = CliRunner()
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def use_session_model(monkeypatch, embedder) -> None:
    """Make every store the CLI opens reuse the session's model instead of loading its own."""

    def store() -> EmbeddedStore:
        s = EmbeddedStore(cli._State.data_dir, cli._State.spec)
        spec = cli._State.spec
        s.embedders.add(spec, embedder)
        return s

    monkeypatch.setattr(cli._State, "store", store)


@pytest.fixture(autouse=True)
def session_model(monkeypatch, embedder) -> None:
    use_session_model(monkeypatch, embedder)


def docqa(data_dir: Path, *args: str):
    return runner.invoke(docqa_app, ["--data-dir", str(data_dir), *map(str, args)])


def docqa_json(data_dir: Path, *args: str, code: int = 0) -> dict:
    result = docqa(data_dir, *args, "--json")
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def ingested_once(tmp_path_factory, embedder) -> tuple[Path, Path]:
    """The samples ingested through the CLI once per module: (documents folder, data directory)."""
    root = tmp_path_factory.mktemp("cli")
    docs, data = root / "docs", root / "data"
    shutil.copytree(SAMPLES, docs, ignore=shutil.ignore_patterns("*.py"))
    with pytest.MonkeyPatch.context() as mp:
        use_session_model(mp, embedder)
        docqa_json(data, "ingest", docs, "--workers", "0")
    return docs, data


@pytest.fixture
def ingested(ingested_once: tuple[Path, Path], data_dir: Path) -> Path:
    """A private copy of the ingested data directory; the documents folder is shared, so leave it alone."""
    docs, data = ingested_once
    shutil.copytree(data, data_dir)
    return docs


def open_store(data_dir: Path):
    store = EmbeddedStore(data_dir)
    return store, store.catalog.get_collection("default")


def test_ingest_reports_every_file_as_json_and_exits_0(data_dir: Path, samples_copy: Path) -> None:
    report = docqa_json(data_dir, "ingest", samples_copy, "--workers", "0")
    assert set(report) == {"collection", "counts", "chunks", "seconds", "results"}
    assert report["collection"] == "default"
    assert report["counts"] == {"ingested": 6, "unchanged": 0, "replaced": 0, "removed": 0, "failed": 0}
    assert len(report["results"]) == 6
    for r in report["results"]:
        assert set(r) == {"source", "status", "reason", "chunks", "document_id"}
        assert r["status"] == "ingested" and r["chunks"] > 0 and r["reason"] is None
        assert Path(r["source"]).parent == samples_copy.resolve()
    assert report["chunks"] == sum(r["chunks"] for r in report["results"])
    again = docqa_json(data_dir, "ingest", samples_copy, "--workers", "0")
    assert again["counts"]["unchanged"] == 6 and again["chunks"] == 0


def test_ingest_with_failing_files_exits_1_and_names_each_file_and_reason(data_dir: Path, samples_copy: Path) -> None:
    (samples_copy / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    (samples_copy / "empty.txt").write_bytes(b"")
    (samples_copy / "junk.txt").write_bytes(bytes(range(256)) * 8)
    report = docqa_json(data_dir, "ingest", samples_copy, "--workers", "0", code=1)
    failures = {Path(r["source"]).name: r["reason"] for r in report["results"] if r["status"] == "failed"}
    assert sorted(failures) == ["broken.pdf", "empty.txt", "junk.txt"]
    assert "PDF" in failures["broken.pdf"] and "empty" in failures["empty.txt"] and "binary" in failures["junk.txt"]
    assert report["counts"]["ingested"] == 6

    status = docqa_json(data_dir, "status")["collections"][0]
    assert (status["documents"], status["failed"]) == (6, 3)
    assert {Path(f["source"]).name: f["error"] for f in status["failures"]} == failures

    text = docqa(data_dir, "ingest", samples_copy, "--workers", "0")
    assert text.exit_code == 1
    assert "Failures" in text.stdout and "binary content" in text.stdout


def test_ingest_into_a_collection_built_by_another_model_exits_2_naming_it(
    data_dir: Path, ingested: Path, monkeypatch
) -> None:
    class OtherModel:
        identity = EmbedderIdentity("sentence-transformers", "other-model", 384, 256, "", "", "fp32")

    monkeypatch.setattr(store_module, "build_embedder", lambda spec: OtherModel())
    result = docqa(data_dir, "--model", "other-model", "ingest", ingested, "--workers", "0")
    assert result.exit_code == 2
    assert "another embedder" in result.stderr and "other-model" in result.stderr


def test_status_lists_collections_with_counts_and_embedder(data_dir: Path, ingested: Path) -> None:
    status = docqa_json(data_dir, "status")
    [row] = status["collections"]
    assert set(row) == {"collection", "documents", "failed", "chunks", "embedder", "failures"}
    assert (row["collection"], row["documents"], row["failed"], row["failures"]) == ("default", 6, 0, [])
    assert row["chunks"] > 5
    assert row["embedder"]["model"] == "sentence-transformers/all-MiniLM-L6-v2" and row["embedder"]["dim"] == 384
    assert docqa_json(data_dir, "status", "-c", "default") == status


def test_status_of_an_unknown_collection_exits_2(data_dir: Path, ingested: Path) -> None:
    result = docqa(data_dir, "status", "-c", "nope")
    assert result.exit_code == 2 and "nope" in result.stderr


def test_search_json_gives_passages_with_document_page_and_score(data_dir: Path, ingested: Path) -> None:
    for mode in ("dense", "lexical", "hybrid"):
        question = "How many GPUs was the Atlas model trained on?"
        found = docqa_json(data_dir, "search", question, "--mode", mode, "-k", "3")
        assert (found["query"], found["mode"]) == (question, mode)
        assert 1 <= len(found["hits"]) <= 3
        top = found["hits"][0]
        assert {"chunk_id", "document_id", "title", "source", "page", "score", "scores", "text"} <= set(top)
        assert Path(top["source"]).name == "atlas-report.pdf" and top["page"] == 2 and "64 GPUs" in top["text"]
        assert isinstance(top["score"], float)


def test_search_with_a_bad_mode_or_collection_exits_2(data_dir: Path, ingested: Path) -> None:
    bad_mode = docqa(data_dir, "search", "anything", "--mode", "semantic")
    assert bad_mode.exit_code == 2 and "semantic" in bad_mode.stderr
    bad_k = docqa(data_dir, "search", "anything", "-k", "0")
    assert bad_k.exit_code == 2 and "got 0" in bad_k.stderr
    missing = docqa(data_dir, "search", "anything", "-c", "nope")
    assert missing.exit_code == 2 and "nope" in missing.stderr


def test_remove_by_source_or_id_drops_the_document_and_its_vectors(data_dir: Path, ingested: Path) -> None:
    store, collection = open_store(data_dir)
    faq = store.catalog.find_document(collection.id, str((ingested / "faq.html").resolve()))
    pdf = store.catalog.find_document(collection.id, str((ingested / "atlas-report.pdf").resolve()))
    gone = {c["id"] for d in (faq, pdf) for c in store.catalog.document_chunks(d.id)}

    result = docqa(data_dir, "remove", ingested / "faq.html", str(pdf.id))
    assert result.exit_code == 0, result.stderr
    printed = result.stdout.replace("\n", "")  # rich folds long paths at 80 columns when not on a terminal
    assert f"{ingested.resolve() / 'faq.html'} ({faq.chunk_count} chunks)" in printed and "atlas-report.pdf" in printed
    assert docqa_json(data_dir, "status")["collections"][0]["documents"] == 4
    saved = VectorIndex.load(store.vector_path(collection))
    assert not gone & set(saved.ids())
    assert saved.seq == store.catalog.last_seq(collection.id)
    assert docqa_json(data_dir, "check")["ok"] is True


def test_removing_an_unknown_document_exits_2_and_removes_nothing(data_dir: Path, ingested: Path) -> None:
    result = docqa(data_dir, "remove", "no-such-file.md")
    assert result.exit_code == 2 and "no-such-file.md" in result.stderr
    assert docqa(data_dir, "remove").exit_code == 2
    assert docqa_json(data_dir, "status")["collections"][0]["documents"] == 6


def test_remove_all_deletes_the_collection_and_its_vector_file(data_dir: Path, ingested: Path) -> None:
    store, collection = open_store(data_dir)
    assert store.vector_path(collection).exists()
    assert docqa(data_dir, "remove", "--all").exit_code == 0
    assert docqa_json(data_dir, "status") == {"collections": []}
    assert not store.vector_path(collection).exists()


def test_check_json_is_ok_on_a_consistent_index(data_dir: Path, ingested: Path) -> None:
    report = docqa_json(data_dir, "check")
    assert report["ok"] is True
    [row] = report["collections"]
    assert row["ok"] is True and row["collection"] == "default"
    assert row["chunks"] == row["vectors"] == row["lexical_rows"] > 0
    for key in ("missing_vectors", "orphan_vectors", "missing_lexical", "orphan_lexical", "bad_dimensions"):
        assert row[key] == []
    assert row["problems"] == []


def test_check_names_deleted_fts_rows_and_repair_fixes_them(data_dir: Path, ingested: Path) -> None:
    store, collection = open_store(data_dir)
    victims = [int(i) for i in store.catalog.chunk_ids(collection.id)[::4]]
    store.catalog.db.executemany(f"DELETE FROM {fts_table(collection.id)} WHERE rowid = ?", [(i,) for i in victims])
    broken = docqa_json(data_dir, "check", code=1)
    assert broken["ok"] is False and broken["collections"][0]["missing_lexical"] == victims

    repaired = docqa_json(data_dir, "check", "--repair")
    assert repaired["ok"] is True
    assert docqa_json(data_dir, "check")["ok"] is True
    hits = docqa_json(data_dir, "search", "staging cluster nodes", "--mode", "lexical", "-k", "50")["hits"]
    assert set(victims) & {h["chunk_id"] for h in hits}


def test_check_names_vectors_missing_from_the_file_and_repair_fixes_them(data_dir: Path, ingested: Path) -> None:
    store, collection = open_store(data_dir)
    path = store.vector_path(collection)
    damaged = VectorIndex.load(path)
    victims = [int(i) for i in damaged.ids()[1:4]]
    damaged.remove(victims)
    damaged.save(path)  # the same seq, so catching up cannot put them back
    broken = docqa_json(data_dir, "check", code=1)["collections"][0]
    assert broken["missing_vectors"] == victims and broken["ok"] is False

    assert docqa_json(data_dir, "check", "--repair")["ok"] is True
    assert set(victims) <= set(VectorIndex.load(path).ids())
    assert docqa(data_dir, "check").exit_code == 0


def test_check_reports_a_deleted_vector_file_and_repair_rewrites_it(data_dir: Path, ingested: Path) -> None:
    store, collection = open_store(data_dir)
    store.vector_path(collection).unlink()
    problem = docqa_json(data_dir, "check", code=1)["collections"][0]["problems"][0]
    assert "missing" in problem and str(store.vector_path(collection)) in problem
    text = docqa(data_dir, "check")
    assert text.exit_code == 1 and "MISMATCH" in text.stdout
    assert docqa(data_dir, "check", "--repair").exit_code == 0
    assert store.vector_path(collection).exists()
    assert docqa(data_dir, "check").exit_code == 0


def test_reindex_rebuilds_vectors_without_embedding_anything(
    data_dir: Path, ingested: Path, embedder, monkeypatch
) -> None:
    store, collection = open_store(data_dir)
    before = store.vectors(collection)
    probe = store.catalog.embeddings(collection_id=collection.id)[1][0]
    expected = before.search(probe, 5)
    store.vector_path(collection).unlink()

    def no_embedding(*args, **kwargs):
        raise AssertionError("reindex must not embed")

    monkeypatch.setattr(store_module, "build_embedder", no_embedding)
    monkeypatch.setattr(embedder, "embed_documents", no_embedding)
    monkeypatch.setattr(embedder, "embed_query", no_embedding)
    result = docqa(data_dir, "reindex")
    assert result.exit_code == 0, result.stderr
    assert f"{before.ntotal} vectors" in result.stdout
    rebuilt = VectorIndex.load(store.vector_path(collection))
    assert rebuilt.search(probe, 5) == expected
    assert docqa(data_dir, "check").exit_code == 0
    assert docqa(data_dir, "reindex", "-c", "nope").exit_code == 2


def test_reindex_index_ivf_builds_and_records_an_ivf_index_that_check_verifies(data_dir: Path, ingested: Path) -> None:
    store, collection = open_store(data_dir)
    chunks = store.counts(collection)["chunks"]
    result = docqa(data_dir, "reindex", "--index", "ivf", "--nlist", "2", "--nprobe", "2")
    assert result.exit_code == 0, result.stderr
    assert f"{chunks} vectors (ivf: nlist 2, nprobe 2, quantiser sq8, trained_on {chunks}" in result.stdout
    header = VectorIndex.read_header(store.vector_path(collection))["index"]
    assert (header["kind"], header["nlist"], header["nprobe"], header["chosen"]) == ("ivf", 2, 2, "ivf")
    checked = docqa_json(data_dir, "check")
    assert checked["ok"] is True and checked["collections"][0]["index"] == header

    assert docqa(data_dir, "reindex", "--index", "flat").exit_code == 0
    assert VectorIndex.read_header(store.vector_path(collection))["index"] == {"kind": "flat", "chosen": "flat"}


def test_reindex_with_an_unknown_index_kind_is_a_clear_error(data_dir: Path, ingested: Path) -> None:
    result = docqa(data_dir, "reindex", "--index", "hnsw")
    assert result.exit_code == 2
    assert "--index must be auto, flat or ivf, got 'hnsw'" in result.stderr
    result = docqa(data_dir, "reindex", "--index", "ivf", "--quantiser", "sq3")
    assert result.exit_code == 2 and "quantiser must be one of sq8, fp16, pq" in result.stderr


def test_sync_through_the_cli_removes_deleted_files(data_dir: Path, samples_copy: Path) -> None:
    docqa_json(data_dir, "ingest", samples_copy, "--workers", "0")
    (samples_copy / "faq.html").unlink()
    report = docqa_json(data_dir, "ingest", samples_copy, "--sync", "--workers", "0")
    assert [Path(r["source"]).name for r in report["results"] if r["status"] == "removed"] == ["faq.html"]
    assert docqa_json(data_dir, "status")["collections"][0]["documents"] == 5


def test_metadata_and_glob_options_shape_what_is_ingested(data_dir: Path, samples_copy: Path) -> None:
    report = docqa_json(data_dir, "ingest", samples_copy, "--glob", "*.md", "--metadata", "team=docs", "--workers", "0")
    assert sorted(Path(r["source"]).name for r in report["results"]) == ["handbook.md", "politica-de-ferias.md"]
    store, collection = open_store(data_dir)
    assert {d.metadata["team"] for d in store.catalog.list_documents(collection.id)} == {"docs"}
    bad = docqa(data_dir, "ingest", samples_copy, "--metadata", "no-equals-sign")
    assert bad.exit_code == 2 and "key=value" in bad.stderr


def test_the_cli_stores_float32_vectors_of_the_models_dimension(data_dir: Path, ingested: Path) -> None:
    store, collection = open_store(data_dir)
    _, matrix = store.catalog.embeddings(collection_id=collection.id)
    assert matrix.dtype == np.float32 and matrix.shape[1] == 384
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-4)
