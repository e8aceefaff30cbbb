"""The Store contract, run on every backend: the embedded store (SQLite + FTS5 + FAISS), the same with BM25 by
tantivy (caught up after every write, so its searches are tantivy's), and PostgreSQL (pgvector).

One set of tests, parametrised over all three (as Haystack's document-store tests and txtai's shared ANN tests are):
every protocol method, replace and delete atomic and complete, every filter operator, collections as a
permission boundary, `check()` finding a planted inconsistency and `repair()` fixing it, and the two
backends ranking alike. Vectors are random 8-dimensional ones (no model), so this runs in seconds.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from fake_catalog import DIM, IDENTITY, unit_vectors
from indexes.backends import StoreOptions, open_store
from indexes.catalog import embedding_of
from indexes.embedded import EmbeddedStore
from indexes.errors import Conflict, InvalidInput, NotFound
from indexes.filters import Filters
from indexes.postgres import PostgresStore
from indexes.store import IndexChoice, SearchQuery, Store
from indexes.types import ChunkInput, Collection, DocumentFields

BACKENDS = ["embedded", "embedded-tantivy", pytest.param("postgres", marks=pytest.mark.postgres)]


class CaughtUpTantivyStore(EmbeddedStore):
    """The embedded store with BM25 by tantivy from the first chunk, its index caught up after every write (as
    after every batch when serving), so the contract's searches go through tantivy."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, options=StoreOptions(lexical="tantivy"))

    def create_collection(self, *args, **kwargs):
        collection = super().create_collection(*args, **kwargs)
        self.flush(collection)
        return collection

    def put_document(self, collection, *args, **kwargs):
        result = super().put_document(collection, *args, **kwargs)
        self.flush(collection)
        return result

    def record_failure(self, collection, *args, **kwargs):
        result = super().record_failure(collection, *args, **kwargs)
        self.flush(collection)
        return result


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def make_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    if backend == "embedded":
        return open_store(None, tmp_path / "data")
    if backend == "embedded-tantivy":
        return CaughtUpTantivyStore(tmp_path / "data")
    return open_store(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    s = make_store(backend, tmp_path, request)
    yield s
    s.close()


@pytest.fixture
def docs(store: Store) -> Collection:
    return store.create_collection("docs", IDENTITY)


def chunk(text: str, heading: tuple[str, ...] = ()) -> ChunkInput:
    return ChunkInput(text, f"{' > '.join(heading)}\n{text}", 0, len(text), 1, 1, heading)


def put(store: Store, collection: Collection, source: str, texts: list[str], seed: int = 0,
        metadata: dict | None = None, sentences: list | None = None) -> tuple[int, list[int]]:
    fields = DocumentFields(source, f"sha-{source}-{seed}", 10, 1.0, title=source.upper(), metadata=metadata,
                            pages=len(texts), text=" ".join(texts))
    return store.put_document(collection, fields, [chunk(t) for t in texts], unit_vectors(len(texts), seed), sentences)


def lexical(store: Store, collection: Collection, text: str, filters: Filters | None = None, k: int = 50,
            engine_checked: bool = True) -> list[int]:
    if engine_checked and isinstance(store, CaughtUpTantivyStore):  # what the contract asks of it, tantivy answers
        assert store.lexical_engine(collection) == "tantivy"
    return [i for i, _ in store.lexical_search(SearchQuery(collection, text, k=k, candidates=k, filters=filters or Filters()))]


def dense(store: Store, collection: Collection, vector: np.ndarray, filters: Filters | None = None, k: int = 50) -> list[int]:
    query = SearchQuery(collection, "", vector, k=k, candidates=k, filters=filters or Filters())
    return [i for i, _ in store.dense_search(query)]


def as_stored(store: Store, matrix: np.ndarray) -> np.ndarray:
    """Vectors as a backend gives them back: the embedded store keeps float16 (schema 6), PostgreSQL float32."""
    return matrix.astype(np.float16).astype(np.float32) if isinstance(store, EmbeddedStore) else matrix


def consistent(store: Store, collection: Collection) -> bool:
    """check() after flush(): what a backend derives is saved, then compared with its rows."""
    store.flush(collection)
    return store.check(collection).ok


# --- collections -----------------------------------------------------------------------------------------


def test_collections_are_created_found_listed_counted_and_deleted(store: Store) -> None:
    a = store.create_collection("alpha", IDENTITY, "the first")
    store.create_collection("beta", IDENTITY)
    assert store.find_collection("alpha") == a and a.description == "the first" and a.embedder == IDENTITY
    assert [c.name for c in store.list_collections()] == ["alpha", "beta"]
    with pytest.raises(Conflict):
        store.create_collection("alpha", IDENTITY)
    put(store, a, "a.md", ["one", "two"])
    assert store.counts(a) == {"documents": 1, "failed": 0, "chunks": 2}
    store.delete_collection("alpha")
    assert store.find_collection("alpha") is None and [c.name for c in store.list_collections()] == ["beta"]
    with pytest.raises(NotFound):
        store.get_collection("alpha")
    again = store.create_collection("alpha", IDENTITY)  # a new one, empty, never the old one's rows
    assert again.id != a.id and store.counts(again)["chunks"] == 0 and lexical(store, again, "one") == []


def test_an_empty_collection_takes_another_embedder_and_one_with_chunks_keeps_its_own(store: Store) -> None:
    wider = {**IDENTITY, "model": "fake-16", "dim": 2 * DIM}
    empty = store.create_collection("empty", IDENTITY)
    changed = store.set_embedder(empty, wider)
    assert changed.embedder == wider and store.get_collection("empty").embedder == wider and changed.id == empty.id
    vectors = unit_vectors(2, 3)
    fields = DocumentFields("w.md", "sha-w", 10, 1.0, title="W", pages=1, text="wide one wide two")
    store.put_document(changed, fields, [chunk("wide one"), chunk("wide two")], np.hstack([vectors, vectors]) / np.sqrt(2))
    query = np.hstack([vectors[1], vectors[1]]) / np.sqrt(2)  # searched at the new dimension
    assert dense(store, changed, query)[:1] == [store.document_chunks(store.find_document(changed, "w.md").id)[1]["id"]]
    assert store.set_embedder(changed, IDENTITY).embedder == wider  # it holds chunks now: kept
    assert store.get_collection("empty").embedder == wider and consistent(store, changed)


def test_another_process_that_loaded_the_empty_collection_searches_it_at_its_new_dimension(
        store: Store, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    wider = {**IDENTITY, "model": "fake-16", "dim": 2 * DIM}
    other = make_store(backend, tmp_path, request)  # a second process's store on the same data
    try:
        empty = store.create_collection("empty", IDENTITY)
        other.warm_up(other.get_collection("empty"))  # its (empty) vectors loaded at the old dimension
        changed = store.set_embedder(empty, wider)
        vectors = unit_vectors(2, 5)
        wide = np.hstack([vectors, vectors]) / np.sqrt(2)
        fields = DocumentFields("w.md", "sha-w", 10, 1.0, title="W", pages=1, text="wide one wide two")
        _, ids = store.put_document(changed, fields, [chunk("wide one"), chunk("wide two")], wide)
        seen = other.get_collection("empty")
        assert seen.embedder == wider and dense(other, seen, wide[0])[:1] == [ids[0]]
    finally:
        other.close()


# --- documents -------------------------------------------------------------------------------------------


def test_a_document_is_stored_with_its_chunks_text_vectors_and_sentence_vectors(store: Store, docs: Collection) -> None:
    sentences = [np.eye(2, DIM, dtype=np.float16), None]
    document_id, chunk_ids = put(store, docs, "guide.md", ["staging has twelve nodes", "production has forty"],
                                 metadata={"team": "infra"}, sentences=sentences)
    doc = store.get_document(document_id, docs)
    assert (doc.source, doc.title, doc.status, doc.chunk_count, doc.metadata, doc.pages) == (
        "guide.md", "GUIDE.MD", "ok", 2, {"team": "infra"}, 2)
    assert store.find_document(docs, "guide.md") == doc and store.find_document(docs, "other.md") is None
    assert store.document_text(document_id) == "staging has twelve nodes production has forty"
    listed = store.document_chunks(document_id)
    assert [c["id"] for c in listed] == chunk_ids and [c["ordinal"] for c in listed] == [0, 1]
    assert listed[0]["text"] == "staging has twelve nodes" and listed[0]["end"] == len("staging has twelve nodes")
    records = store.chunks(chunk_ids + [10**9])
    assert sorted(records) == sorted(chunk_ids)  # an unknown id is left out
    first = records[chunk_ids[0]]
    assert (first.document_id, first.source, first.title, first.metadata, first.page_start) == (
        document_id, "guide.md", "GUIDE.MD", {"team": "infra"}, 1)
    ids, matrix = store.embeddings(chunk_ids)
    assert list(ids) == sorted(chunk_ids) and np.array_equal(matrix, as_stored(store, unit_vectors(2, 0)))  # bit for bit
    vectors = store.chunk_vectors(chunk_ids, DIM)
    assert np.array_equal(vectors[chunk_ids[0]][1], sentences[0]) and vectors[chunk_ids[1]][1] is None


def test_export_gives_back_everything_put(store: Store, docs: Collection) -> None:
    sentences = [np.full((3, DIM), 0.25, dtype=np.float16)]
    document_id, _ = put(store, docs, "x.md", ["alpha beta"], seed=3, metadata={"k": 1}, sentences=sentences)
    stored = store.export_document(document_id)
    assert stored.status == "ok" and stored.fields.source == "x.md" and stored.fields.metadata == {"k": 1}
    assert stored.fields.text == "alpha beta" and stored.fields.sha256 == "sha-x.md-3"
    assert stored.chunks == [chunk("alpha beta")]
    assert np.array_equal(stored.embeddings, as_stored(store, unit_vectors(1, 3))) and np.array_equal(stored.sentence_vectors[0], sentences[0])


def test_replacing_a_document_keeps_nothing_of_the_old_version(store: Store, docs: Collection) -> None:
    old_id, old_chunks = put(store, docs, "a.md", ["obsolete words here", "more obsolete"], seed=1)
    created = store.get_document(old_id).created_at
    new_id, new_chunks = put(store, docs, "a.md", ["fresh text"], seed=2)
    assert new_id != old_id and not set(old_chunks) & set(new_chunks)
    assert store.chunks(old_chunks) == {} and len(store.embeddings(old_chunks)[0]) == 0
    assert lexical(store, docs, "obsolete") == [] and lexical(store, docs, "fresh") == new_chunks
    assert set(dense(store, docs, unit_vectors(2, 1)[0])) == set(new_chunks)
    assert store.get_document(new_id).created_at == created  # the document is the same one, re-read
    with pytest.raises(NotFound):
        store.get_document(old_id)
    assert store.counts(docs) == {"documents": 1, "failed": 0, "chunks": 1} and consistent(store, docs)


def test_a_put_that_fails_midway_leaves_the_previous_version_whole(store: Store, docs: Collection) -> None:
    _, old_chunks = put(store, docs, "a.md", ["kept words", "kept too"], seed=1)
    broken = [None, ["not", "a", "vector"]]  # the second chunk's sentence vectors cannot be stored
    with pytest.raises(Exception):
        put(store, docs, "a.md", ["new one", "new two"], seed=2, sentences=broken)
    assert sorted(lexical(store, docs, "kept")) == sorted(old_chunks) and lexical(store, docs, "new") == []
    assert store.counts(docs) == {"documents": 1, "failed": 0, "chunks": 2} and consistent(store, docs)


def test_readers_see_a_replaced_document_whole_never_half(store: Store, docs: Collection) -> None:
    versions = [["shared word"] * 3, ["shared word"] * 5]
    put(store, docs, "a.md", versions[0])
    seen: set[int] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.add(len(lexical(store, docs, "shared", engine_checked=False)))  # either engine, as it happens

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(30):
            put(store, docs, "a.md", versions[(i + 1) % 2], seed=i)
    finally:
        stop.set()
        reader.join()
    assert seen <= {3, 5} and seen  # never 0 (between delete and insert) and never 8 (both versions)


def test_deleting_a_document_is_complete(store: Store, docs: Collection) -> None:
    document_id, chunk_ids = put(store, docs, "gone.md", ["vanishing act", "vanishing again"], seed=4)
    _, kept = put(store, docs, "kept.md", ["vanishing but kept"], seed=5)
    before = store.last_seq(docs)
    store.delete_document(docs, document_id)
    assert store.last_seq(docs) > before
    assert store.chunks(chunk_ids) == {} and store.chunk_vectors(chunk_ids, DIM) == {}
    assert lexical(store, docs, "vanishing") == kept
    assert dense(store, docs, unit_vectors(2, 4)[0]) == kept
    assert [d.source for d in store.list_documents(docs)] == ["kept.md"]
    assert store.counts(docs) == {"documents": 1, "failed": 0, "chunks": 1} and consistent(store, docs)
    with pytest.raises(NotFound):
        store.delete_document(docs, document_id)


def test_a_document_of_another_collection_cannot_be_deleted_through_this_one(store: Store, docs: Collection) -> None:
    other = store.create_collection("other", IDENTITY)
    document_id, _ = put(store, other, "o.md", ["theirs"])
    with pytest.raises(NotFound):
        store.delete_document(docs, document_id)
    with pytest.raises(NotFound):
        store.get_document(document_id, docs)
    assert store.get_document(document_id, other).source == "o.md"


def test_failures_are_recorded_and_replaced_by_a_good_version(store: Store, docs: Collection) -> None:
    failed_id = store.record_failure(docs, DocumentFields("bad.pdf", "sha", 3), "encrypted PDF")
    doc = store.get_document(failed_id)
    assert (doc.status, doc.error, doc.chunk_count) == ("failed", "encrypted PDF", 0)
    assert [d.source for d in store.list_documents(docs, status="failed")] == ["bad.pdf"]
    assert store.counts(docs) == {"documents": 0, "failed": 1, "chunks": 0}
    put(store, docs, "bad.pdf", ["readable now"])
    assert store.list_documents(docs, status="failed") == [] and store.counts(docs)["documents"] == 1


def test_documents_are_listed_by_source_in_byte_order(store: Store, docs: Collection) -> None:
    for source in ["b.md", "B.md", "a.md", "Á.md", "_x.md"]:
        put(store, docs, source, [source])
    assert [d.source for d in store.list_documents(docs)] == sorted(["b.md", "B.md", "a.md", "Á.md", "_x.md"])


# --- search ----------------------------------------------------------------------------------------------


def test_dense_search_ranks_by_cosine_best_first(store: Store, docs: Collection) -> None:
    vectors = unit_vectors(20, 9)
    fields = DocumentFields("v.md", "s", 1)
    _, ids = store.put_document(docs, fields, [chunk(f"c{i}") for i in range(20)], vectors)
    ranked = store.dense_search(SearchQuery(docs, "", vectors[7], k=5, candidates=5))
    cosines = as_stored(store, vectors) @ vectors[7]
    exact = np.argsort(-cosines)[:5]
    assert [i for i, _ in ranked] == [ids[j] for j in exact]
    assert ranked[0][1] == pytest.approx(1.0, abs=1e-3)
    assert [s for _, s in ranked] == pytest.approx(sorted(cosines[exact], reverse=True), abs=1e-5)


def test_lexical_search_is_bm25_repeated_words_weigh_more_and_function_words_none(store: Store, docs: Collection) -> None:
    _, a = put(store, docs, "a.md", ["the staging cluster has twelve nodes"])
    _, b = put(store, docs, "b.md", ["the production cluster is large"])
    put(store, docs, "c.md", ["unrelated words entirely", "another unrelated passage"])
    assert lexical(store, docs, "staging nodes") == a
    assert lexical(store, docs, "cluster staging")[0] == a[0]
    assert set(lexical(store, docs, "cluster")) == {a[0], b[0]}
    assert lexical(store, docs, "the of and") == []  # nothing to look up
    assert lexical(store, docs, "férias") == [] and lexical(store, docs, "") == []


def test_lexical_search_folds_accents_and_stems_portuguese(store: Store, docs: Collection) -> None:
    _, ids = put(store, docs, "ferias.md", ["Os funcionários têm trinta dias de férias por ano."])
    assert lexical(store, docs, "Quantos dias de ferias?") == ids
    assert lexical(store, docs, "funcionario") == ids


@pytest.fixture
def filtered(store: Store, docs: Collection) -> tuple[Store, Collection, dict[str, int]]:
    """Six documents whose every chunk holds the word "report", with metadata to filter on."""
    metadata = {
        "2021.md": {"year": 2021, "team": "infra", "date": "2021-06-30", "score": 0.5, "public": True},
        "2022.md": {"year": 2022, "team": "ml", "date": "2022-01-15", "score": 1.5},
        "2023.pdf": {"year": 2023, "team": "infra", "date": "2023-12-01", "public": False},
        "2024.pdf": {"year": 2024, "team": "sales", "date": "2024-03-01", "score": 2},
        "notes/x.txt": {"year": "unknown", "team": "ml"},
        "notes/y.txt": {},
    }
    ids = {}
    for i, (source, meta) in enumerate(metadata.items()):
        ids[source] = put(store, docs, source, ["quarterly report", "report appendix"], seed=i, metadata=meta)[0]
    return store, docs, ids


FILTER_CASES = [
    ({"metadata": {"team": "infra"}}, {"2021.md", "2023.pdf"}),
    ({"metadata": {"team": ["ml", "sales"]}}, {"2022.md", "2024.pdf", "notes/x.txt"}),
    ({"metadata": {"team": "infra", "year": 2023}}, {"2023.pdf"}),
    ({"metadata": {"public": True}}, {"2021.md"}),
    ({"metadata": {"score": 2.0}}, {"2024.pdf"}),  # a number equals the same number, integer or not
    ({"metadata": {"year": "2021"}}, set()),  # the string "2021" is not the number 2021
    ({"where": {"field": "metadata.team", "op": "ne", "value": "infra"}},
     {"2022.md", "2024.pdf", "notes/x.txt", "notes/y.txt"}),  # ne keeps documents without the key
    ({"where": {"field": "metadata.team", "op": "not_in", "value": ["infra", "ml"]}}, {"2024.pdf", "notes/y.txt"}),
    ({"where": {"field": "metadata.year", "op": "gt", "value": 2022}}, {"2023.pdf", "2024.pdf"}),
    ({"where": {"field": "metadata.year", "op": "gte", "value": 2022}}, {"2022.md", "2023.pdf", "2024.pdf"}),
    ({"where": {"field": "metadata.year", "op": "lt", "value": 2022}}, {"2021.md"}),  # never the string "unknown"
    ({"where": {"field": "metadata.year", "op": "lte", "value": 2022.5}}, {"2021.md", "2022.md"}),
    ({"where": {"field": "metadata.score", "op": "lt", "value": 1.6}}, {"2021.md", "2022.md"}),
    ({"where": {"field": "metadata.date", "op": "gte", "value": "2022-01-15"}}, {"2022.md", "2023.pdf", "2024.pdf"}),
    ({"where": {"field": "metadata.date", "op": "lt", "value": "2022"}}, {"2021.md"}),
    ({"where": {"field": "metadata.year", "op": "gt", "value": "2000"}}, {"notes/x.txt"}),  # strings with strings
    ({"where": {"field": "source", "op": "in", "value": ["2021.md", "notes/y.txt"]}}, {"2021.md", "notes/y.txt"}),
    ({"where": {"field": "source", "op": "gte", "value": "notes/"}}, {"notes/x.txt", "notes/y.txt"}),
    ({"where": {"field": "title", "op": "eq", "value": "2022.MD"}}, {"2022.md"}),
    ({"where": {"field": "pages", "op": "eq", "value": 2}}, {"2021.md", "2022.md", "2023.pdf", "2024.pdf",
                                                             "notes/x.txt", "notes/y.txt"}),
    ({"where": {"field": "created_at", "op": "lt", "value": "2001-01-01"}}, set()),
    ({"where": {"field": "updated_at", "op": "gte", "value": "2001-01-01T00:00:00+00:00"}},
     {"2021.md", "2022.md", "2023.pdf", "2024.pdf", "notes/x.txt", "notes/y.txt"}),
    ({"source_glob": "*.pdf"}, {"2023.pdf", "2024.pdf"}),
    ({"source_glob": "notes/?.txt"}, {"notes/x.txt", "notes/y.txt"}),
    ({"source_glob": "202[^3]*"}, {"2021.md", "2022.md", "2024.pdf"}),
    ({"source_glob": "*.PDF"}, set()),  # case-sensitive
    ({"where": {"any": [{"field": "metadata.team", "op": "eq", "value": "sales"},
                        {"all": [{"field": "metadata.year", "op": "lte", "value": 2022},
                                 {"field": "metadata.public", "op": "eq", "value": True}]}]}}, {"2021.md", "2024.pdf"}),
    ({"source_glob": "*.md", "where": {"field": "metadata.team", "op": "eq", "value": "ml"}}, {"2022.md"}),
]


@pytest.mark.parametrize("spec, expected", FILTER_CASES, ids=[str(i) for i in range(len(FILTER_CASES))])
def test_every_filter_operator_keeps_exactly_the_right_documents(filtered, spec, expected) -> None:
    store, docs, ids = filtered
    by_id = {v: k for k, v in ids.items()}
    filters = Filters(**spec)
    for ranked in (lexical(store, docs, "report", filters), dense(store, docs, unit_vectors(1, 0)[0], filters)):
        found = {by_id[r.document_id] for r in store.chunks(ranked).values()}
        assert found == expected
        assert len(ranked) == 2 * len(expected)  # every chunk of every kept document: exact, not approximate


def test_document_id_filters_keep_only_those_documents(filtered) -> None:
    store, docs, ids = filtered
    keep = Filters(document_ids=[ids["2022.md"], ids["notes/y.txt"]])
    for ranked in (lexical(store, docs, "report", keep), dense(store, docs, unit_vectors(1, 0)[0], keep)):
        assert {r.source for r in store.chunks(ranked).values()} == {"2022.md", "notes/y.txt"}
    nothing = Filters(document_ids=[])
    assert lexical(store, docs, "report", nothing) == [] and dense(store, docs, unit_vectors(1, 0)[0], nothing) == []


def test_a_search_never_returns_a_chunk_of_another_collection(store: Store, docs: Collection) -> None:
    secret = store.create_collection("secret", IDENTITY)
    _, theirs = put(store, secret, "s.md", ["payroll figures quarterly"], seed=1)
    secret_doc = store.list_documents(secret)[0].id
    _, ours = put(store, docs, "d.md", ["quarterly overview"], seed=2)
    assert lexical(store, docs, "payroll quarterly") == ours
    assert dense(store, docs, unit_vectors(1, 1)[0]) == ours  # even the other collection's exact vector
    assert lexical(store, docs, "payroll", Filters(document_ids=[secret_doc])) == []
    assert dense(store, docs, unit_vectors(1, 1)[0], Filters(document_ids=[secret_doc])) == []
    assert lexical(store, secret, "quarterly") == theirs


# --- consistency ------------------------------------------------------------------------------------------


def plant_missing_lexical_row(store: Store, collection: Collection, chunk_id: int) -> None:
    """Remove one chunk's lexical index entries behind the store's back."""
    if isinstance(store, EmbeddedStore):
        from indexes.schema import fts_table

        with store.catalog.transaction() as db:
            db.execute(f"DELETE FROM {fts_table(collection.id)} WHERE rowid = ?", (chunk_id,))
    else:
        assert isinstance(store, PostgresStore)
        with store.connection() as conn:
            conn.execute("DELETE FROM postings WHERE chunk_id = %s", (chunk_id,))


def plant_missing_vector_index(store: Store, collection: Collection) -> None:
    """Damage what the backend derives for dense search: the FAISS file, or the HNSW index."""
    if isinstance(store, EmbeddedStore):
        store.flush(collection)
        store.vector_path(collection).write_bytes(b"garbage")
    else:
        from indexes.postgres import hnsw_index

        with store.connection() as conn:
            conn.execute(f"DROP INDEX {hnsw_index(collection.id)}")


def test_check_finds_a_planted_lexical_inconsistency_and_repair_fixes_it(store: Store, docs: Collection) -> None:
    _, ids = put(store, docs, "a.md", ["first passage words", "second passage words"])
    assert consistent(store, docs)
    plant_missing_lexical_row(store, docs, ids[1])
    report = store.check(docs)
    assert not report.ok and report.missing_lexical == [ids[1]]
    store.repair(docs)
    assert consistent(store, docs) and sorted(lexical(store, docs, "passage")) == sorted(ids)


def test_check_finds_a_damaged_vector_index_and_repair_rebuilds_it(store: Store, docs: Collection) -> None:
    _, ids = put(store, docs, "a.md", ["first", "second"])
    plant_missing_vector_index(store, docs)
    report = store.check(docs)
    assert not report.ok and report.problems
    store.repair(docs)
    assert consistent(store, docs) and set(dense(store, docs, unit_vectors(1, 0)[0])) == set(ids)


def test_repair_with_an_index_choice_builds_it_where_there_is_one_and_says_so_where_not(
    backend: str, store: Store, docs: Collection,
) -> None:
    _, ids = put(store, docs, "a.md", [f"passage {i}" for i in range(60)])
    if backend.startswith("embedded"):
        store.repair(docs, IndexChoice("ivf", nlist=2))
        assert store.check(docs).index["kind"] == "ivf"
    else:
        with pytest.raises(InvalidInput, match="pgvector HNSW; --index ivf applies to the embedded store only"):
            store.repair(docs, IndexChoice("ivf"))
        store.repair(docs, IndexChoice("auto"))  # auto is what it has
        assert store.check(docs).index["kind"] == "hnsw"
    assert consistent(store, docs) and set(dense(store, docs, unit_vectors(1, 0)[0], k=60)) == set(ids)


def test_the_change_sequence_grows_with_every_change(store: Store, docs: Collection) -> None:
    seen = [store.last_seq(docs)]
    document_id, _ = put(store, docs, "a.md", ["x"])
    seen.append(store.last_seq(docs))
    put(store, docs, "a.md", ["y"], seed=1)
    seen.append(store.last_seq(docs))
    store.delete_document(docs, store.find_document(docs, "a.md").id)
    seen.append(store.last_seq(docs))
    assert seen == sorted(seen) and len(set(seen)) == 4


def test_ping_answers_while_the_store_is_usable(store: Store) -> None:
    store.ping()


# --- the service's records ----------------------------------------------------------------------------------


def test_conversations_keys_and_jobs_round_trip(store: Store) -> None:
    records = store.records
    records.conversations.create("c1", "docs", "", "alice", 1.0)
    records.conversations.add_messages("c1", [("user", "q?", {"rewritten_question": "q?"}), ("assistant", "a.", {})],
                                       "q?", 2.0)
    assert records.conversations.get("c1") == ("c1", "docs", "q?", "alice", 1.0, 2.0)
    assert [m[1:3] for m in records.conversations.messages("c1")] == [("user", "q?"), ("assistant", "a.")]
    assert [m[2] for m in records.conversations.messages("c1", role="user")] == ["q?"]
    records.conversations.delete("c1")
    with pytest.raises(NotFound):
        records.conversations.get("c1")
    records.keys.create("k1", "ci", "reader", '["docs"]', "digest", 3.0)
    records.keys.revoke("k1", 4.0)
    records.keys.revoke("k1", 5.0)  # the first revocation time stays
    assert records.keys.get("k1") == ("k1", "ci", "reader", '["docs"]', 3.0, 4.0)
    assert records.keys.secret("k1") == ("digest", "reader", '["docs"]', 4.0) and records.keys.get("nope") is None
    records.jobs.create("j1", "docs", ["a.md", "b.md"], 6.0, 123, "host-a")
    records.jobs.update("j1", state="running", started_at=7.0)
    job = records.jobs.get("j1")
    assert (job["state"], job["pid"], job["host"]) == ("running", 123, "host-a")
    assert [(f["source"], f["status"]) for f in job["files"]] == [("a.md", "pending"), ("b.md", "pending")]
    done = {"source": "b.md", "status": "ingested", "reason": None, "chunks": 3, "document_id": 9}
    pruned = {"source": "gone.md", "status": "removed", "reason": None, "chunks": 1, "document_id": 4}
    records.jobs.update("j1", files={1: done})
    records.jobs.update("j1", files={2: pruned}, state="succeeded")  # a file the job did not list goes last
    job = records.jobs.get("j1")
    assert job["files"][1:] == [done, pruned] and job["files"][0]["status"] == "pending" and job["state"] == "succeeded"
    records.jobs.update("j1", state="running")
    assert records.jobs.unfinished() == [("j1", 123, "host-a")]
    records.jobs.fail(["j1"], "interrupted", 8.0)
    assert records.jobs.get("j1")["state"] == "failed" and records.jobs.unfinished() == []
    with pytest.raises(ValueError):
        records.jobs.update("j1", **{"state = 'x' --": 1})


def test_conversations_are_listed_newest_first_filtered_and_paged_by_the_database(store: Store) -> None:
    conversations = store.records.conversations
    for i in range(12):  # updated in turn: c11 newest; alice's in docs and wiki, bob's in docs
        owner, collection = ("alice", "docs") if i % 3 == 0 else ("alice", "wiki") if i % 3 == 1 else ("bob", "docs")
        conversations.create(f"c{i:02}", collection, "", owner, float(i))

    def ids(**query) -> list[str]:
        return [row[0] for row in conversations.list(**query)]

    assert ids(limit=100) == [f"c{i:02}" for i in reversed(range(12))]
    alices = ids(owner="alice", limit=100)
    assert alices == ["c10", "c09", "c07", "c06", "c04", "c03", "c01", "c00"]
    # every page is full until the last: the filters are applied before the page is cut, not after
    pages = [ids(owner="alice", limit=3, offset=offset) for offset in (0, 3, 6, 9)]
    assert pages == [alices[:3], alices[3:6], alices[6:], []]
    assert ids(owner="alice", collection="docs", limit=2, offset=1) == ["c06", "c03"]
    assert ids(readable={"wiki"}, limit=2) == ["c10", "c07"] and ids(readable=set()) == []
    conversations.add_messages("c00", [("user", "q?", {})], "q?", 20.0)  # a new message brings it to the front
    assert ids(limit=1) == ["c00"]



def answer_row(answer_id: str, collection: str, created_at: float, **fields) -> dict:
    citations = [{"n": 1, "document_id": 7, "title": "Ops", "source": "ops.md", "locator": {"kind": "page", "page": 2},
                  "cited": True}]
    return {"id": answer_id, "collection": collection, "question": f"q {answer_id}?", "asked": None,
            "answer": f"a {answer_id} [1].", "citations": citations, "abstained": False, "reason": None,
            "origin": "ask", "key_id": "k1", "created_at": created_at, **fields}


def test_answers_and_their_feedback_round_trip_and_rating_again_replaces(store: Store) -> None:
    answers = store.records.answers
    first, second = answer_row("a1", "docs", 1.0), answer_row("a2", "docs", 2.0, abstained=True, reason="weak", key_id=None)
    for row in (first, second, answer_row("a3", "wiki", 3.0)):
        answers.add(row)
    assert answers.get("a1") == {**first, "feedback": []}
    assert answers.get("a2")["abstained"] is True and answers.get("a2")["key_id"] is None
    with pytest.raises(NotFound):
        answers.get("nope")
    with pytest.raises(NotFound):
        answers.rate("nope", "k1", "up", None, 4.0)
    assert answers.rate("a1", "k1", "up", None, 4.0) is True
    assert answers.rate("a1", "k1", "down", "wrong page", 5.0) is False  # the same rater again: replaced
    assert answers.rate("a1", "", "up", None, 6.0) is True  # another rater (auth off) has a rating of its own
    assert answers.get("a1")["feedback"] == [
        {"rater": "k1", "rating": "down", "comment": "wrong page", "created_at": 4.0, "updated_at": 5.0},
        {"rater": "", "rating": "up", "comment": None, "created_at": 6.0, "updated_at": 6.0},
    ]
    answers.rate("a3", "k2", "up", None, 7.0)
    rated = answers.rated("docs")
    assert [a["id"] for a in rated] == ["a1"] and [f["rating"] for f in rated[0]["feedback"]] == ["down", "up"]
    assert rated[0]["citations"] == first["citations"] and answers.rated("elsewhere") == []
    assert answers.prune(before=2.5) == 1  # a2: old and unrated; a1 was rated, a3 is newer
    with pytest.raises(NotFound):
        answers.get("a2")
    assert answers.get("a1")["feedback"] and answers.get("a3")["id"] == "a3"


def test_migrating_copies_answers_with_their_feedback_once(store: Store, tmp_path: Path) -> None:
    from indexes.migrate import migrate

    store.records.answers.add(answer_row("a1", "docs", 1.0))
    store.records.answers.rate("a1", "k1", "down", "stale", 2.0)
    target = open_store(None, tmp_path / "copy")
    report = migrate(store, target)
    assert (report.records["answers"], report.records["feedback"]) == (1, 1)
    assert target.records.answers.get("a1") == store.records.answers.get("a1")
    again = migrate(store, target)
    assert (again.records["answers"], again.records["feedback"]) == (0, 0)
    target.close()


@pytest.mark.postgres
def test_a_postgres_database_from_before_feedback_gets_its_tables_when_opened(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    with store.connection() as conn:  # as a docqa of schema 2 left it: no answers, no feedback
        conn.execute("DROP TABLE feedback")
        conn.execute("DROP TABLE answers")
        conn.execute("UPDATE docqa_meta SET value = '2' WHERE key = 'schema_version'")
    store.close()
    reopened = PostgresStore(postgres_url)
    reopened.records.answers.add(answer_row("a1", "docs", 1.0))
    assert reopened.records.answers.rate("a1", "k1", "up", None, 2.0) is True
    reopened.close()

# --- both backends rank alike -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_bm25_scores_equal_fts5s_and_hnsw_finds_the_exact_neighbours(tmp_path: Path, postgres_url: str) -> None:
    texts = [f"document {i} about {'clusters and nodes' if i % 3 else 'vacation days'} number {i % 7} "
             f"{'staging ' * (i % 4)}words" for i in range(60)]
    stores = [open_store(None, tmp_path / "data"), open_store(postgres_url)]
    rankings = []
    for store in stores:
        c = store.create_collection("docs", IDENTITY)
        for i in range(0, 60, 6):
            fields = DocumentFields(f"d{i}.md", "s", 1)
            store.put_document(c, fields, [chunk(t) for t in texts[i:i + 6]], unit_vectors(60, 1)[i:i + 6])
        per_store = []
        for question in ["staging nodes", "vacation days number 3", "clusters staging staging", "words"]:
            ranked = store.lexical_search(SearchQuery(c, question, k=20, candidates=20))
            records = store.chunks([i for i, _ in ranked])
            per_store.append([(records[i].source, records[i].ordinal, round(s, 4)) for i, s in ranked])
        ranked = store.dense_search(SearchQuery(c, "", unit_vectors(60, 1)[17], k=10, candidates=10))
        records = store.chunks([i for i, _ in ranked])
        per_store.append([(records[i].source, records[i].ordinal) for i, _ in ranked])
        rankings.append(per_store)
        store.close()
    embedded, postgres = rankings
    for a, b in zip(embedded, postgres):
        assert a == b and a


@pytest.mark.postgres
def test_many_processes_may_open_one_database_at_once(postgres_url: str) -> None:
    opened: list[Store] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            opened.append(PostgresStore(postgres_url))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(opened) == 4
    c = opened[0].create_collection("docs", IDENTITY)
    put(opened[0], c, "a.md", ["seen by the others"])
    assert all(lexical(s, s.get_collection("docs"), "others") for s in opened)
    for s in opened:
        s.close()


@pytest.mark.postgres
def test_an_unreachable_database_is_storage_unavailable_naming_it(tmp_path: Path) -> None:
    from indexes.backends import StoreOptions
    from indexes.errors import StorageUnavailable
    from service.problems import status_of

    url = f"postgresql://postgres@/nowhere?host={tmp_path}&port=1"
    with pytest.raises(StorageUnavailable, match="cannot reach PostgreSQL") as caught:
        PostgresStore(url, options=StoreOptions(connect_timeout=1))
    assert status_of(caught.value)[0] == 503  # the service answers it as retryable


def test_an_unknown_store_scheme_is_invalid_input_listing_the_registered_ones(tmp_path: Path) -> None:
    from indexes.errors import InvalidInput

    with pytest.raises(InvalidInput, match="'mongodb'.*postgresql.*sqlite"):
        open_store("mongodb://x/y", tmp_path)


def test_no_url_opens_the_embedded_store_in_the_data_directory(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "data")
    assert isinstance(store, EmbeddedStore) and (tmp_path / "data" / "catalog.sqlite3").exists()
    same = open_store(f"sqlite:///{tmp_path / 'data'}", tmp_path / "elsewhere")  # four slashes: absolute
    assert isinstance(same, EmbeddedStore) and same.data_dir == tmp_path / "data"





def test_nothing_outside_indexes_opens_a_database_or_writes_sql() -> None:
    import re

    root = Path(__file__).resolve().parents[1]
    persistence = re.compile(r"^\s*(import|from)\s+(sqlite3|psycopg|psycopg_pool|faiss)\b|\.execute(many|script)?\(|\bcatalog\.db\b",
                             re.MULTILINE)
    offenders = [f"{path.relative_to(root)}: {match.group(0).strip()}"
                 for package in ("service", "ingest") for path in sorted((root / package).rglob("*.py"))
                 for match in persistence.finditer(path.read_text())]
    assert offenders == []


def test_a_filter_may_name_more_document_ids_than_a_database_binds_variables(filtered) -> None:
    store, docs, ids = filtered
    limit = sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # 32,766 or 250,000
    many = Filters(document_ids=list(range(10**6, 10**6 + limit + 1)) + [ids["2023.pdf"]])
    for ranked in (lexical(store, docs, "report", many), dense(store, docs, unit_vectors(1, 0)[0], many)):
        assert {r.source for r in store.chunks(ranked).values()} == {"2023.pdf"}


@pytest.mark.postgres
def test_postgres_postings_analysed_by_an_older_docqa_are_rebuilt_when_the_store_opens(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    c = store.create_collection("docs", IDENTITY)
    _, ids = put(store, c, "a.md", ["staging cluster nodes"])
    with store.connection() as conn:  # as an older analysis would have left them: other terms
        conn.execute("UPDATE postings SET term = term || '_old'")
        conn.execute("UPDATE docqa_meta SET value = '0' WHERE key = 'analysis_version'")
    assert lexical(store, c, "staging") == []
    store.close()
    reopened = PostgresStore(postgres_url)
    assert lexical(reopened, c, "staging") == ids and reopened.check(c).ok
    reopened.close()


def test_a_filtered_search_sees_what_was_committed_since_the_same_search(store: Store, docs: Collection) -> None:
    team = Filters(metadata={"team": "infra"})
    _, first = put(store, docs, "a.md", ["shared quarterly report"], metadata={"team": "infra"})
    assert lexical(store, docs, "report", team) == first
    _, second = put(store, docs, "b.md", ["another quarterly report"], seed=1, metadata={"team": "infra"})
    assert sorted(lexical(store, docs, "report", team)) == sorted(first + second)
    assert sorted(dense(store, docs, unit_vectors(1, 0)[0], team)) == sorted(first + second)
    store.delete_document(docs, store.find_document(docs, "a.md").id)
    assert lexical(store, docs, "report", team) == second


# --- locators and OCR ------------------------------------------------------------------------------------

SLIDE = {"kind": "slide", "slide": 3}
ROWS = {"kind": "sheet", "sheet": "Q3", "rows": [2, 9]}


def put_placed(store: Store, collection: Collection) -> tuple[int, list[int]]:
    """A document whose chunks have a slide, a sheet's rows, no place at all, and one read by OCR."""
    texts = ["slide three says hello", "Region: North; Revenue: 4.2M", "plain words", "scanned words"]
    chunks = [
        ChunkInput(texts[0], texts[0], 0, 1, locator=SLIDE),
        ChunkInput(texts[1], texts[1], 1, 2, locator=ROWS),
        ChunkInput(texts[2], texts[2], 2, 3),
        ChunkInput(texts[3], texts[3], 3, 4, 5, 5, locator={"kind": "page", "page": 5}, ocr=True),
    ]
    fields = DocumentFields("deck.pptx", "sha", 10, 1.0, title="Deck", pages=5, text=" ".join(texts), ocr_pages=(5,))
    return store.put_document(collection, fields, chunks, unit_vectors(4, 7))


def test_chunks_keep_their_locator_and_ocr_flag_and_documents_their_ocr_pages(store: Store, docs: Collection) -> None:
    document_id, ids = put_placed(store, docs)
    records = store.chunks(ids)
    assert [records[i].locator for i in ids] == [SLIDE, ROWS, None, {"kind": "page", "page": 5}]
    assert [records[i].ocr for i in ids] == [False, False, False, True]
    listed = store.document_chunks(document_id)
    assert [(c["locator"], c["ocr"]) for c in listed] == [(SLIDE, False), (ROWS, False), (None, False),
                                                          ({"kind": "page", "page": 5}, True)]
    assert store.get_document(document_id, docs).ocr_pages == [5]
    assert [d.ocr_pages for d in store.list_documents(docs)] == [[5]]
    stored = store.export_document(document_id)
    assert [(c.locator, c.ocr) for c in stored.chunks] == [(r.locator, r.ocr) for r in (records[i] for i in ids)]
    assert stored.fields.ocr_pages == (5,)


def test_migrating_carries_locators_ocr_flags_and_ocr_pages(store: Store, docs: Collection, tmp_path: Path) -> None:
    from indexes.migrate import migrate

    document_id, _ = put_placed(store, docs)
    target = open_store(None, tmp_path / "copy")
    migrate(store, target)
    copied = target.get_collection("docs")
    doc = target.find_document(copied, "deck.pptx")
    assert doc.ocr_pages == [5]
    assert [(c["locator"], c["ocr"]) for c in target.document_chunks(doc.id)] == [
        (c["locator"], c["ocr"]) for c in store.document_chunks(document_id)]
    target.close()


SQLITE_SCHEMA_4 = {  # the two tables schema 5 added columns to, as docqa declared them before
    "documents": "CREATE TABLE documents (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                 " collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE, source TEXT NOT NULL,"
                 " title TEXT, sha256 TEXT, size INTEGER, mtime REAL, status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),"
                 " error TEXT, warnings TEXT NOT NULL DEFAULT '[]', metadata TEXT NOT NULL DEFAULT '{}', pages INTEGER,"
                 " text TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL, UNIQUE (collection_id, source))",
    "chunks": "CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT,"
              " document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE, collection_id INTEGER NOT NULL,"
              " ordinal INTEGER NOT NULL, text TEXT NOT NULL, embed_text TEXT NOT NULL, start INTEGER NOT NULL,"
              " end INTEGER NOT NULL, page_start INTEGER, page_end INTEGER, heading_path TEXT NOT NULL DEFAULT '[]',"
              " embedding BLOB NOT NULL, sentence_vectors BLOB)",
}


def downgrade(store: Store) -> None:
    """Make the store's tables look as a docqa before locators left them (no locator, ocr or ocr_pages)."""
    statements = ["ALTER TABLE chunks DROP COLUMN locator", "ALTER TABLE chunks DROP COLUMN ocr",
                  "ALTER TABLE documents DROP COLUMN ocr_pages"]
    if isinstance(store, EmbeddedStore):  # SQLite: the tables rebuilt as schema 4 declared them
        db = sqlite3.connect(store.catalog.path)
        for table, declared in SQLITE_SCHEMA_4.items():
            kept = ", ".join(r[1] for r in db.execute(f"PRAGMA table_info({table})")
                             if r[1] not in ("locator", "ocr", "ocr_pages"))
            db.executescript(f"PRAGMA foreign_keys = OFF; ALTER TABLE {table} RENAME TO gone; {declared};"
                             f" INSERT INTO {table} SELECT {kept} FROM gone; DROP TABLE gone;")
        db.executemany("UPDATE chunks SET embedding = ? WHERE id = ?",  # float32, as schema 4 stored them
                       [(embedding_of(b).tobytes(), i) for i, b in db.execute("SELECT id, embedding FROM chunks").fetchall()])
        db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
        db.commit()
        db.close()
    else:
        with store.connection() as conn:
            for statement in statements + ["UPDATE docqa_meta SET value = '1' WHERE key = 'schema_version'"]:
                conn.execute(statement)


def test_a_store_from_before_locators_opens_and_its_chunks_cite_their_pages(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    old = make_store(backend, tmp_path, request)
    collection = old.create_collection("docs", IDENTITY)
    _, ids = put(old, collection, "report.pdf", ["page one text", "more text"])
    downgrade(old)
    old.close()
    store = make_store(backend, tmp_path, request)
    collection = store.get_collection("docs")
    records = store.chunks(ids)
    assert [records[i].locator for i in ids] == [None, None]  # nothing stored, so nothing invented in the store
    assert [c["locator"] for c in store.document_chunks(records[ids[0]].document_id)] == [{"kind": "page", "page": 1}] * 2
    assert store.find_document(collection, "report.pdf").ocr_pages == []
    _, new_ids = put_placed(store, collection)  # and it takes the new fields from now on
    assert store.chunks(new_ids)[new_ids[0]].locator == SLIDE
    assert consistent(store, collection)
    store.close()


@pytest.mark.postgres
def test_postgres_text_fields_never_receive_a_nul(postgres_url: str) -> None:
    """PostgreSQL rejects NUL in text and jsonb: a title, source, error or metadata holding one is stored with
    U+FFFD instead of failing the commit (and with it the batch)."""
    store = PostgresStore(postgres_url)
    c = store.create_collection("docs", IDENTITY)
    fields = DocumentFields("mail.eml#a\x00b.txt", "sha", 1, 1.0, title="Re: a\x00b", metadata={"k\x00": ["v\x00"]},
                            text="a\x00b")
    document_id, _ = store.put_document(c, fields, [chunk("a\x00b")], unit_vectors(1, 0))
    doc = store.get_document(document_id, c)
    assert (doc.title, doc.metadata) == ("Re: a\ufffdb", {"k\ufffd": ["v\ufffd"]})
    assert store.find_document(c, "mail.eml#a\x00b.txt") == doc  # found by the name it was given
    failed = store.record_failure(c, DocumentFields("bad\x00.pdf", "sha", 1), "cannot read bad\x00.pdf")
    assert store.get_document(failed, c).error == "cannot read bad\ufffd.pdf"
    store.close()


@pytest.mark.postgres
def test_opening_an_up_to_date_postgres_database_alters_no_table(postgres_url: str) -> None:
    """ALTER TABLE takes an exclusive lock: only a database an older docqa made is altered on open."""
    PostgresStore(postgres_url).close()
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as holder:
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE chunks IN ROW EXCLUSIVE MODE")  # what a writer holds mid-ingest
        opening = threading.Thread(target=lambda: PostgresStore(postgres_url).close(), daemon=True)
        opening.start()
        opening.join(20)
        opened = not opening.is_alive()  # an ALTER TABLE would wait for the writer's lock
        holder.execute("ROLLBACK")
    opening.join(20)
    assert opened, "opening the store waited for a writer's table lock"
