"""Chunk vectors stored as float16 (schema 6): what a put stores, what comes back, and the migration of a catalog
written before, whose float32 vectors are rewritten once, all or none, and whose vector files are rebuilt."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from indexes.catalog import Catalog
from indexes.embedded import EmbeddedStore
from indexes.schema import SCHEMA_VERSION
from indexes.store import SearchQuery
from indexes.types import ChunkInput, DocumentFields
from indexes.vectors import VectorIndex
from fake_catalog import DIM, IDENTITY, unit_vectors


def put(store: EmbeddedStore, collection, source: str, vectors: np.ndarray) -> list[int]:
    chunks = [ChunkInput(f"{source} {i}", f"{source} {i}", i, i + 1) for i in range(len(vectors))]
    return store.put_document(collection, DocumentFields(source, f"sha-{source}", 1), chunks, vectors)[1]


def blobs(path: Path) -> dict[int, bytes]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT id, embedding FROM chunks"))


def test_a_put_stores_float16_and_reads_back_float32_within_its_rounding(catalog: Catalog, cid: int) -> None:
    vectors = unit_vectors(6, seed=3)
    ids = catalog.put_document(cid, DocumentFields("a", "sha", 1), [ChunkInput("t", "t", 0, 1)] * 6, vectors)[1]
    stored = blobs(catalog.path)
    assert all(len(stored[i]) == 2 * DIM for i in ids)  # 2 bytes a dimension, not 4
    got_ids, matrix = catalog.embeddings(ids)
    assert matrix.dtype == np.float32 and list(got_ids) == ids
    assert np.array_equal(matrix, vectors.astype(np.float16).astype(np.float32))
    assert np.abs(matrix - vectors).max() < 1e-3


def make_old_catalog(data: Path) -> tuple[dict[int, np.ndarray], list[int]]:
    """A data directory as docqa wrote it before schema 6: float32 vectors, schema 5, a flat vector file
    without the `embeddings` header field. Returns the original vectors by chunk id."""
    store = EmbeddedStore(data)
    collection = store.create_collection("docs", IDENTITY)
    originals: dict[int, np.ndarray] = {}
    for d in range(4):
        vectors = unit_vectors(10, seed=d)
        originals.update(zip(put(store, collection, f"doc{d}", vectors), vectors))
    store.flush(collection)
    store.close()
    with sqlite3.connect(data / "catalog.sqlite3") as db:
        db.executemany("UPDATE chunks SET embedding = ? WHERE id = ?",
                       [(v.astype(np.float32).tobytes(), i) for i, v in originals.items()])
        db.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    index = VectorIndex(DIM)
    index.add(list(originals), np.vstack(list(originals.values())))
    index.seq = VectorIndex.read_header(data / "vectors" / f"{collection.id}.faiss")["seq"]
    index.embeddings = "float32"
    index.save(data / "vectors" / f"{collection.id}.faiss")
    return originals, [collection.id]


def test_opening_an_old_catalog_converts_its_vectors_and_rebuilds_the_vector_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    originals, _ = make_old_catalog(data)
    assert all(len(b) == 4 * DIM for b in blobs(data / "catalog.sqlite3").values())

    store = EmbeddedStore(data)
    assert store.catalog.converted == len(originals)
    collection = store.get_collection("docs")
    assert all(len(b) == 2 * DIM for b in blobs(data / "catalog.sqlite3").values())
    ids, matrix = store.catalog.embeddings(list(originals))
    expected = np.vstack([originals[i] for i in ids]).astype(np.float16).astype(np.float32)
    assert np.array_equal(matrix, expected)
    with sqlite3.connect(data / "catalog.sqlite3") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert VectorIndex.read_header(store.vector_path(collection))["embeddings"] == "float16"
    report = store.check(collection)
    assert report.ok, report  # the file holds the float16 values now, exactly

    for chunk_id, vector in list(originals.items())[::7]:  # each original still finds its own chunk first
        hits = store.dense_search(SearchQuery(collection, vector=vector, k=3, mode="dense"))
        assert hits[0][0] == chunk_id and hits[0][1] == pytest.approx(1.0, abs=1e-3)


def test_the_conversion_happens_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_old_catalog(data)
    EmbeddedStore(data)
    converted = blobs(data / "catalog.sqlite3")
    again = EmbeddedStore(data)  # a second open (or a second process, after the first) converts nothing
    assert again.catalog.converted == 0
    assert blobs(data / "catalog.sqlite3") == converted


def test_a_conversion_that_fails_midway_leaves_the_old_catalog_whole(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data"
    make_old_catalog(data)
    before = blobs(data / "catalog.sqlite3")
    import indexes.catalog as catalog_module

    calls = {"n": 0}
    original = catalog_module.embedding_blob

    def fail_late(vector):
        calls["n"] += 1
        if calls["n"] == 30:
            raise OSError("disk full")
        return original(vector)

    monkeypatch.setattr(catalog_module, "embedding_blob", fail_late)
    with pytest.raises(Exception, match="disk full"):
        EmbeddedStore(data)
    assert blobs(data / "catalog.sqlite3") == before  # all or none: none
    monkeypatch.setattr(catalog_module, "embedding_blob", original)
    assert EmbeddedStore(data).catalog.converted == len(before)


def test_a_vector_file_built_from_float32_vectors_is_reported_by_check(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "data")
    collection = store.create_collection("docs", IDENTITY)
    put(store, collection, "a", unit_vectors(5))
    store.flush(collection)
    index = VectorIndex.load(store.vector_path(collection))
    index.embeddings = "float32"
    index.save(store.vector_path(collection))
    assert any("built from float32" in p for p in store.check(collection).problems)
