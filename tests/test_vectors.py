"""The FAISS index: persistence, catch-up from the change log, rebuild, and the store's check/repair."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import indexes.store as store_module
import indexes.vectors as vectors_module
from indexes.catalog import Catalog
from indexes.errors import EmbedderMismatch, StorageError
from indexes.schema import fts_table
from indexes.search import Searcher
from indexes.embedded import EmbeddedStore
from indexes.types import ChunkInput, DocumentFields
from indexes.vectors import VectorIndex
from ingest.pipeline import IngestPipeline
from fake_catalog import DIM, IDENTITY, unit_vectors

def put(catalog: Catalog, cid: int, source: str, n: int, seed: int = 0) -> list[int]:
    chunks = [ChunkInput(f"{source} {i}", f"{source} {i}", i, i + 1) for i in range(n)]
    return catalog.put_document(cid, DocumentFields(source, f"sha-{seed}", 1), chunks, unit_vectors(n, seed))[1]


# -- VectorIndex ------------------------------------------------------------------------------------


def test_search_finds_the_nearest_vector_first() -> None:
    index = VectorIndex(DIM)
    matrix = unit_vectors(5)
    index.add([10, 11, 12, 13, 14], matrix)
    hits = index.search(matrix[3], 2)
    assert hits[0][0] == 13
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert len(hits) == 2


def test_search_with_allowed_ids_only_returns_those() -> None:
    index = VectorIndex(DIM)
    matrix = unit_vectors(5)
    index.add([1, 2, 3, 4, 5], matrix)
    assert {i for i, _ in index.search(matrix[0], 5, allowed=[2, 4])} == {2, 4}
    assert index.search(matrix[0], 5, allowed=[]) == []


def test_adding_an_existing_id_replaces_its_vector() -> None:
    index = VectorIndex(DIM)
    a, b = unit_vectors(2)
    index.add([7], a[None])
    index.add([7], b[None])
    assert index.ntotal == 1
    assert index.search(b, 1)[0] == (7, pytest.approx(1.0, abs=1e-5))


def test_removing_ids_drops_them_and_ignores_unknown_ones() -> None:
    index = VectorIndex(DIM)
    index.add([1, 2, 3], unit_vectors(3))
    index.remove([2, 99])
    assert list(index.ids()) == [1, 3]


def test_wrong_dimensions_are_rejected() -> None:
    with pytest.raises(ValueError, match="got 0"):
        VectorIndex(0)
    with pytest.raises(ValueError, match="dimension 4, index has 8"):
        VectorIndex(DIM).add([1], np.ones((1, 4), dtype=np.float32))


def test_save_and_load_round_trip_ids_seq_and_results(tmp_path: Path) -> None:
    index = VectorIndex(DIM)
    matrix = unit_vectors(6, seed=3)
    index.add([5, 6, 7, 8, 9, 10], matrix)
    index.seq = 42
    index.save(tmp_path / "v" / "1.faiss")
    loaded = VectorIndex.load(tmp_path / "v" / "1.faiss")
    assert (loaded.dim, loaded.seq) == (DIM, 42)
    assert list(loaded.ids()) == [5, 6, 7, 8, 9, 10]
    assert loaded.search(matrix[2], 3) == index.search(matrix[2], 3)
    assert [p.name for p in (tmp_path / "v").iterdir()] == ["1.faiss"]  # no temp file left behind


def test_a_failed_save_keeps_the_previous_file_and_leaves_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "1.faiss"
    index = VectorIndex(DIM)
    index.add([1], unit_vectors(1))
    index.seq = 1
    index.save(path)
    index.add([2], unit_vectors(1, seed=9))
    index.seq = 2

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(vectors_module.os, "replace", full_disk)
    with pytest.raises(StorageError, match="No space left"):
        index.save(path)
    monkeypatch.undo()
    survivor = VectorIndex.load(path)
    assert (survivor.seq, list(survivor.ids())) == (1, [1])
    assert [p.name for p in tmp_path.iterdir()] == ["1.faiss"]


def test_loading_a_file_that_is_not_a_vector_index_fails(tmp_path: Path) -> None:
    path = tmp_path / "1.faiss"
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a docqa vector index"):
        VectorIndex.load(path)


def test_catch_up_applies_adds_and_dels_from_the_change_log(catalog: Catalog, cid: int) -> None:
    index = VectorIndex(DIM)
    a = put(catalog, cid, "a.md", 3)
    assert index.catch_up(catalog, cid) == 3
    assert list(index.ids()) == a
    seq = index.seq
    assert seq == catalog.last_seq(cid)
    b = put(catalog, cid, "b.md", 2, seed=1)
    a2 = put(catalog, cid, "a.md", 1, seed=2)  # replaces a: three dels, one add
    assert index.catch_up(catalog, cid) == 2 + 3 + 1
    assert list(index.ids()) == sorted(b + a2)
    assert index.seq == catalog.last_seq(cid) > seq
    _, stored = catalog.embeddings(a2)
    assert index.search(stored[0], 1)[0][0] == a2[0]
    assert index.catch_up(catalog, cid) == 0


def test_catch_up_drops_a_chunk_added_and_deleted_since_the_last_save(catalog: Catalog, cid: int) -> None:
    index = VectorIndex(DIM)
    keep = put(catalog, cid, "keep.md", 1)
    index.catch_up(catalog, cid)
    gone = put(catalog, cid, "gone.md", 2, seed=1)
    catalog.delete_document(catalog.find_document(cid, "gone.md").id)
    index.catch_up(catalog, cid)
    assert list(index.ids()) == keep
    assert not set(gone) & set(index.ids())


def test_rebuild_equals_incremental_catch_up(catalog: Catalog, cid: int) -> None:
    incremental = VectorIndex(DIM)
    for step, source in enumerate(["a.md", "b.md", "c.md", "a.md", "d.md"]):
        put(catalog, cid, source, 2 + step % 3, seed=step)
        incremental.catch_up(catalog, cid)
    catalog.delete_document(catalog.find_document(cid, "b.md").id)
    incremental.catch_up(catalog, cid)
    rebuilt = VectorIndex.rebuild(catalog, cid, DIM)
    assert list(rebuilt.ids()) == list(incremental.ids()) == list(catalog.chunk_ids(cid))
    assert rebuilt.seq == incremental.seq == catalog.last_seq(cid)
    _, matrix = catalog.embeddings(collection_id=cid)
    for query in matrix:
        assert rebuilt.search(query, 4) == incremental.search(query, 4)


# -- EmbeddedStore: vectors derived from the catalog, check and repair ---------------------------------


@pytest.fixture
def fake_store(tmp_path: Path) -> tuple[EmbeddedStore, object]:
    """A store with a fake collection holding three documents; its vector file is saved."""
    store = EmbeddedStore(tmp_path / "data")
    collection = store.catalog.create_collection("docs", IDENTITY)
    for n, source in enumerate(["a.md", "b.md", "c.md"]):
        put(store.catalog, collection.id, source, 3, seed=n)
    store.save_vectors(collection)
    return store, collection


def test_a_fresh_store_loads_the_saved_vectors_and_catches_up(fake_store, tmp_path: Path) -> None:
    store, collection = fake_store
    extra = put(store.catalog, collection.id, "d.md", 2, seed=9)  # committed after the file was saved
    assert VectorIndex.load(store.vector_path(collection)).seq < store.catalog.last_seq(collection.id)
    reopened = EmbeddedStore(tmp_path / "data")
    ids = reopened.vectors(collection).ids()
    assert list(ids) == list(store.catalog.chunk_ids(collection.id))
    assert set(extra) <= set(ids)


def test_check_is_ok_when_catalog_fts_and_vectors_agree(fake_store) -> None:
    store, collection = fake_store
    report = store.check(collection)
    assert report.ok
    assert report.chunks == report.vectors == report.lexical_rows == 9


def test_check_names_deleted_fts_rows_and_repair_restores_them(fake_store) -> None:
    store, collection = fake_store
    victims = [int(i) for i in store.catalog.chunk_ids(collection.id)[:2]]
    store.catalog.db.executemany(f"DELETE FROM {fts_table(collection.id)} WHERE rowid = ?", [(i,) for i in victims])
    report = store.check(collection)
    assert not report.ok
    assert report.missing_lexical == victims
    store.repair(collection)
    assert store.check(collection).ok


def test_check_names_vectors_missing_from_the_file_and_repair_restores_them(fake_store) -> None:
    store, collection = fake_store
    path = store.vector_path(collection)
    damaged = VectorIndex.load(path)
    victims = [int(i) for i in damaged.ids()[3:5]]
    damaged.remove(victims)
    damaged.save(path)  # same seq: catching up cannot notice
    report = store.check(collection)
    assert report.missing_vectors == victims
    assert report.vectors == 7
    store.repair(collection)
    assert store.check(collection).ok
    assert set(victims) <= set(VectorIndex.load(path).ids())


def test_check_reports_a_missing_vector_file_and_repair_writes_it(fake_store) -> None:
    store, collection = fake_store
    store.vector_path(collection).unlink()
    report = store.check(collection)
    assert "missing" in " ".join(report.problems)
    store.repair(collection)
    assert store.check(collection).ok


def test_check_reports_an_unreadable_vector_file(fake_store) -> None:
    store, collection = fake_store
    store.vector_path(collection).write_bytes(b"DOCQAVEC\x00")
    assert "cannot be read" in " ".join(store.check(collection).problems)
    store.repair(collection)
    assert store.check(collection).ok


def test_a_damaged_vector_file_is_rebuilt_on_open_not_trusted(fake_store, tmp_path: Path) -> None:
    store, collection = fake_store
    store.vector_path(collection).write_bytes(b"not an index at all")
    reopened = EmbeddedStore(tmp_path / "data")
    assert list(reopened.vectors(collection).ids()) == list(store.catalog.chunk_ids(collection.id))


def test_repair_never_embeds(fake_store, monkeypatch) -> None:
    store, collection = fake_store

    def no_models(spec):
        raise AssertionError("repair must not build an embedder")

    monkeypatch.setattr(store_module, "build_embedder", no_models)
    store.vector_path(collection).unlink()
    store.repair(collection)
    assert store.check(collection).ok


# -- the embedder's identity travels with the collection -------------------------------------------


def _tamper_identity(store: EmbeddedStore, name: str, **changes) -> None:
    collection = store.catalog.get_collection(name)
    tampered = json.dumps({**collection.embedder, **changes})
    store.catalog.db.execute("UPDATE collections SET embedder = ? WHERE id = ?", (tampered, collection.id))


@pytest.mark.parametrize(
    ("field", "value"),
    [("model", "intfloat/multilingual-e5-small"), ("dim", 768), ("max_tokens", 512), ("query_prompt", "query: ")],
)
def test_opening_a_collection_with_another_embedder_names_the_field(store: EmbeddedStore, embedder, field, value) -> None:
    store.ensure_collection("docs", embedder)
    _tamper_identity(store, "docs", **{field: value})
    with pytest.raises(EmbedderMismatch, match=rf"{field}: {value!r} vs"):
        store.ensure_collection("docs", embedder)


def test_a_precision_difference_is_not_a_mismatch(store: EmbeddedStore, embedder) -> None:
    store.ensure_collection("docs", embedder)
    _tamper_identity(store, "docs", precision="bf16")
    assert store.ensure_collection("docs", embedder).name == "docs"


def test_searching_or_ingesting_a_collection_whose_recorded_model_differs_is_a_mismatch(
    store: EmbeddedStore, embedder, samples_copy: Path
) -> None:
    collection = store.ensure_collection("docs", embedder)
    IngestPipeline(store, collection, workers=0).ingest_paths([samples_copy / "handbook.md"])
    _tamper_identity(store, "docs", dim=768)  # same model name, vectors of another size
    tampered = store.catalog.get_collection("docs")
    with pytest.raises(EmbedderMismatch, match="dim: 768 vs 384"):
        Searcher(store).search(tampered, "staging nodes", mode="dense")
    with pytest.raises(EmbedderMismatch, match="dim"):
        IngestPipeline(store, tampered, workers=0)


def test_a_vector_file_ahead_of_the_catalog_is_reported_and_rebuilt(fake_store) -> None:
    store, collection = fake_store
    path = store.vector_path(collection)
    index = VectorIndex.load(path) if path.exists() else store.vectors(collection)
    index.seq = store.catalog.last_seq(collection.id) + 1000  # as if the catalog had been restored from an older copy
    index.save(path)
    report = store.check(collection)
    assert not report.ok and "newer than the catalog" in " ".join(report.problems)
    store._vectors.pop(collection.id, None)  # a fresh process: nothing cached
    rebuilt = store.vectors(collection)
    assert rebuilt.seq == store.catalog.last_seq(collection.id)
    assert list(rebuilt.ids()) == list(store.catalog.chunk_ids(collection.id))


def test_check_reads_one_snapshot_while_an_ingestion_commits(fake_store, monkeypatch) -> None:
    store, collection = fake_store
    writer = Catalog(store.catalog.path)  # another connection, as a concurrent ingestion would have
    read_fts = store.catalog.fts_ids
    committed: list[int] = []

    def commit_then_read(collection_id: int):
        if not committed:  # a document lands between check's read of the chunk ids and of the FTS rows
            committed.extend(put(writer, collection.id, "late.md", 3, seed=7))
        return read_fts(collection_id)

    monkeypatch.setattr(store.catalog, "fts_ids", commit_then_read)
    report = store.check(collection)
    assert committed and report.ok, report
    assert report.chunks == report.lexical_rows == report.vectors == 9  # the late document is not half-seen
    assert store.check(collection).chunks == 12  # and the next check sees all of it
