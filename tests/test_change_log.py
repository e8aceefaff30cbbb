"""The embedded store's change log stays small: once a collection's vector file is saved, the changes it reflects
leave the log, and `check` stays exact. An index left behind the compacted log (another process's copy, an older
file written back) is reloaded or rebuilt, never caught up with changes missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fake_catalog import IDENTITY, unit_vectors
from indexes.embedded import EmbeddedStore
from indexes.store import SearchQuery
from indexes.types import ChunkInput, Collection, DocumentFields
from indexes.vectors import VectorIndex


def put(store: EmbeddedStore, collection: Collection, source: str, chunks: int, seed: int) -> list[int]:
    texts = [f"{source} part {i}" for i in range(chunks)]
    fields = DocumentFields(source, f"sha-{source}-{seed}", 10, 1.0, title=source, text=" ".join(texts))
    inputs = [ChunkInput(t, t, 0, len(t), None, None, ()) for t in texts]
    return store.put_document(collection, fields, inputs, unit_vectors(chunks, seed))[1]


def logged(store: EmbeddedStore, collection: Collection) -> int:
    """How many changes of the collection the log holds."""
    return store.catalog.db.execute("SELECT COUNT(*) FROM changes WHERE collection_id = ?", (collection.id,)).fetchone()[0]


def vector_ids(store: EmbeddedStore, collection: Collection) -> list[int]:
    return [int(i) for i in store.vectors(collection).ids()]


def chunk_ids(store: EmbeddedStore, collection: Collection) -> list[int]:
    return [int(i) for i in store.catalog.chunk_ids(collection.id)]


def test_saved_changes_leave_the_log_and_a_reopened_store_catches_up_exactly(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "data")
    docs, other = store.create_collection("docs", IDENTITY), store.create_collection("other", IDENTITY)
    for n in range(40):  # adds, replacements and deletions: 80 + (20 + 20) + 6 logged changes
        put(store, docs, f"{n}.md", 2, seed=n)
    for n in range(10):
        put(store, docs, f"{n}.md", 2, seed=100 + n)
    for n in range(30, 33):
        store.catalog.delete_document(store.find_document(docs, f"{n}.md").id)
    put(store, other, "o.md", 3, seed=7)
    store.save_vectors(other)
    put(store, other, "p.md", 2, seed=8)  # committed after other's file was saved: its file is behind
    assert logged(store, docs) == 126
    store.flush(docs)
    assert logged(store, docs) == 0  # every change of docs is in its file
    assert logged(store, other) == 2  # the changes other's file still needs are kept
    seq = store.last_seq(docs)
    assert seq == VectorIndex.load(store.vector_path(docs)).seq  # the sequence does not go back
    assert store.check(docs).ok and store.check(other).ok and store.check(other).vectors == 5
    later = put(store, docs, "new.md", 2, seed=50)
    store.catalog.delete_document(store.find_document(docs, "0.md").id)
    assert logged(store, docs) == 4 and store.last_seq(docs) > seq
    reopened = EmbeddedStore(tmp_path / "data")  # a restart: the saved file catches up from what is left
    for collection in (docs, other):
        assert vector_ids(reopened, collection) == chunk_ids(reopened, collection)
        assert reopened.check(collection).ok
    query = SearchQuery(docs, vector=unit_vectors(2, 50)[1], k=1, candidates=1, mode="dense")
    assert [i for i, _ in reopened.dense_search(query)] == [later[1]]


def test_another_processs_index_left_behind_the_compacted_log_is_reloaded(tmp_path: Path) -> None:
    writer, reader = EmbeddedStore(tmp_path / "data"), EmbeddedStore(tmp_path / "data")  # two processes' stores
    docs = writer.create_collection("docs", IDENTITY)
    put(writer, docs, "a.md", 2, seed=1)
    writer.save_vectors(docs)
    reader.warm_up(docs)  # its copy reflects a.md only
    added = put(writer, docs, "b.md", 3, seed=2)
    writer.catalog.delete_document(writer.find_document(docs, "a.md").id)
    writer.save_vectors(docs)  # b.md's changes and a.md's deletion leave the log
    assert logged(writer, docs) == 0
    assert vector_ids(reader, docs) == sorted(added) == chunk_ids(reader, docs)


def test_an_older_vector_file_written_back_is_reported_and_rebuilt(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "data")
    docs = store.create_collection("docs", IDENTITY)
    put(store, docs, "a.md", 2, seed=1)
    store.save_vectors(docs)
    older = store.vector_path(docs).read_bytes()
    put(store, docs, "b.md", 2, seed=2)
    store.save_vectors(docs)
    store.vector_path(docs).write_bytes(older)  # as a restored backup of the data directory's vectors would
    report = store.check(docs)
    assert not report.ok and "older than the change log" in report.problems[0]
    reopened = EmbeddedStore(tmp_path / "data")
    assert vector_ids(reopened, docs) == chunk_ids(reopened, docs) and len(chunk_ids(reopened, docs)) == 4
    reopened.repair(docs)
    assert reopened.check(docs).ok
    assert np.array_equal(VectorIndex.load(reopened.vector_path(docs)).ids(), reopened.catalog.chunk_ids(docs.id))
