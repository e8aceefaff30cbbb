"""The SQLite catalog: documents, chunks, FTS rows and the change log move together, or not at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import indexes.catalog as catalog_module
from indexes.catalog import Catalog
from indexes.errors import Conflict, NotFound
from indexes.schema import fts_table
from indexes.types import ChunkInput, DocumentFields
from fake_catalog import IDENTITY, unit_vectors



def chunks_of(*texts: str, heading: tuple[str, ...] = ()) -> list[ChunkInput]:
    """Chunks laid end to end, as the chunker would produce them for one section."""
    out, offset = [], 0
    for text in texts:
        out.append(ChunkInput(text, text, offset, offset + len(text), heading_path=heading))
        offset += len(text) + 1
    return out


vectors = unit_vectors


def fields(source: str, sha: str = "sha-1", **extra) -> DocumentFields:
    return DocumentFields(source=source, sha256=sha, size=10, **extra)


def fts_rowids(catalog: Catalog) -> list[int]:
    return sorted(r[0] for c in catalog.list_collections() for r in catalog.db.execute(f"SELECT rowid FROM {fts_table(c.id)}"))


def table_counts(catalog: Catalog) -> dict[str, int]:
    counts = {t: catalog.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("documents", "chunks", "changes")}
    counts["fts"] = len(fts_rowids(catalog))
    return counts


def test_a_collection_keeps_its_embedder_identity(catalog: Catalog) -> None:
    created = catalog.create_collection("docs", IDENTITY, "handbooks")
    again = Catalog(catalog.path).get_collection("docs")
    assert again == created
    assert again.embedder == IDENTITY
    assert again.description == "handbooks"


def test_creating_a_collection_twice_is_a_conflict(catalog: Catalog, cid: int) -> None:
    with pytest.raises(Conflict, match="docs"):
        catalog.create_collection("docs", IDENTITY)


def test_an_unknown_collection_is_not_found(catalog: Catalog) -> None:
    with pytest.raises(NotFound, match="nope"):
        catalog.get_collection("nope")
    assert catalog.find_collection("nope") is None


def test_putting_a_document_writes_its_chunks_fts_rows_and_add_changes(catalog: Catalog, cid: int) -> None:
    doc_id, chunk_ids = catalog.put_document(
        cid, fields("a.md", title="A", metadata={"team": "x"}, text="alpha beta"),
        chunks_of("alpha apples", "beta bananas"), vectors(2),
    )
    doc = catalog.get_document(doc_id)
    assert (doc.source, doc.title, doc.status, doc.metadata, doc.chunk_count) == ("a.md", "A", "ok", {"team": "x"}, 2)
    assert catalog.document_text(doc_id) == "alpha beta"
    assert [c["text"] for c in catalog.document_chunks(doc_id)] == ["alpha apples", "beta bananas"]
    assert list(catalog.chunk_ids(cid)) == chunk_ids
    assert fts_rowids(catalog) == chunk_ids
    assert [(cid_, op) for _, cid_, op in catalog.changes_since(cid, 0)] == [(i, "add") for i in chunk_ids]


def test_stored_embeddings_round_trip_exactly_as_float16(catalog: Catalog, cid: int) -> None:
    given = vectors(3, seed=7)
    matrix = given.astype(np.float16).astype(np.float32)  # what schema 6 keeps: the nearest float16
    _, chunk_ids = catalog.put_document(cid, fields("a.md"), chunks_of("a", "b", "c"), given)
    ids, stored = catalog.embeddings(collection_id=cid)
    assert list(ids) == chunk_ids
    np.testing.assert_array_equal(stored, matrix)
    ids, stored = catalog.embeddings([chunk_ids[2], chunk_ids[0]])
    assert list(ids) == [chunk_ids[0], chunk_ids[2]]
    np.testing.assert_array_equal(stored, matrix[[0, 2]])


def test_replacing_a_document_removes_old_chunks_and_logs_del_before_add(catalog: Catalog, cid: int) -> None:
    _, old_ids = catalog.put_document(cid, fields("a.md", "v1"), chunks_of("old one", "old two"), vectors(2))
    seq_before = catalog.last_seq(cid)
    doc_id, new_ids = catalog.put_document(cid, fields("a.md", "v2"), chunks_of("new text"), vectors(1, seed=1))
    assert catalog.find_document(cid, "a.md").id == doc_id
    assert catalog.find_document(cid, "a.md").sha256 == "v2"
    assert set(old_ids).isdisjoint(new_ids), "a chunk id must never be reused for other text"
    assert list(catalog.chunk_ids(cid)) == new_ids
    assert fts_rowids(catalog) == new_ids
    assert catalog.changes_since(cid, seq_before) == [
        *[(seq_before + 1 + n, i, "del") for n, i in enumerate(old_ids)],
        (seq_before + 3, new_ids[0], "add"),
    ]


def test_replacing_keeps_the_creation_time_and_the_one_row_per_source(catalog: Catalog, cid: int) -> None:
    first, _ = catalog.put_document(cid, fields("a.md", "v1"), chunks_of("one"), vectors(1))
    created = catalog.get_document(first).created_at
    second, _ = catalog.put_document(cid, fields("a.md", "v2"), chunks_of("two"), vectors(1))
    assert catalog.get_document(second).created_at == created
    assert [d.source for d in catalog.list_documents(cid)] == ["a.md"]


def test_deleting_a_document_removes_its_chunks_and_fts_rows_and_logs_dels(catalog: Catalog, cid: int) -> None:
    keep_id, keep_chunks = catalog.put_document(cid, fields("keep.md"), chunks_of("keep"), vectors(1))
    gone_id, gone_chunks = catalog.put_document(cid, fields("gone.md"), chunks_of("x", "y"), vectors(2))
    seq = catalog.last_seq(cid)
    catalog.delete_document(gone_id)
    with pytest.raises(NotFound):
        catalog.get_document(gone_id)
    assert list(catalog.chunk_ids(cid)) == keep_chunks
    assert fts_rowids(catalog) == keep_chunks
    assert [(c, op) for _, c, op in catalog.changes_since(cid, seq)] == [(i, "del") for i in gone_chunks]
    assert catalog.get_document(keep_id).chunk_count == 1


def test_a_failure_replaces_an_ok_document_and_leaves_no_chunks(catalog: Catalog, cid: int) -> None:
    _, old_ids = catalog.put_document(cid, fields("a.pdf"), chunks_of("text"), vectors(1))
    failed_id = catalog.record_failure(cid, fields("a.pdf", "v2"), "invalid PDF: startxref not found")
    doc = catalog.get_document(failed_id)
    assert (doc.status, doc.error, doc.chunk_count) == ("failed", "invalid PDF: startxref not found", 0)
    assert [d.id for d in catalog.list_documents(cid, status="failed")] == [failed_id]
    assert catalog.list_documents(cid, status="ok") == []
    assert list(catalog.chunk_ids(cid)) == [] and fts_rowids(catalog) == []
    assert catalog.changes_since(cid, 0)[-1][1:] == (old_ids[0], "del")
    assert catalog.counts(cid) == {"documents": 0, "failed": 1, "chunks": 0}


def test_an_exception_mid_put_rolls_back_everything(catalog: Catalog, cid: int, monkeypatch) -> None:
    catalog.put_document(cid, fields("a.md", "v1"), chunks_of("original text"), vectors(1))
    before = table_counts(catalog)
    seq = catalog.last_seq(cid)
    old_chunks = catalog.document_chunks(catalog.find_document(cid, "a.md").id)

    def broken_fts_body(text, heading_path):  # fails after the document and chunk rows were inserted
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(catalog_module, "fts_body", broken_fts_body)
    with pytest.raises(RuntimeError, match="disk on fire"):
        catalog.put_document(cid, fields("a.md", "v2"), chunks_of("replacement"), vectors(1))
    with pytest.raises(RuntimeError):
        catalog.put_document(cid, fields("b.md"), chunks_of("new"), vectors(1))
    assert table_counts(catalog) == before
    assert catalog.last_seq(cid) == seq
    survivor = catalog.find_document(cid, "a.md")
    assert survivor.sha256 == "v1"
    assert catalog.document_chunks(survivor.id) == old_chunks
    assert catalog.find_document(cid, "b.md") is None
    assert not catalog.db.in_transaction


def test_chunks_and_embeddings_must_pair_up(catalog: Catalog, cid: int) -> None:
    with pytest.raises(ValueError, match="2 chunks but 1 embeddings"):
        catalog.put_document(cid, fields("a.md"), chunks_of("a", "b"), vectors(1))
    assert table_counts(catalog)["documents"] == 0


def test_the_change_log_is_ordered_and_per_collection(catalog: Catalog, cid: int) -> None:
    other = catalog.create_collection("other", IDENTITY).id
    _, a = catalog.put_document(cid, fields("a.md"), chunks_of("a"), vectors(1))
    _, b = catalog.put_document(other, fields("b.md"), chunks_of("b"), vectors(1))
    _, c = catalog.put_document(cid, fields("c.md"), chunks_of("c"), vectors(1))
    log = catalog.changes_since(cid, 0)
    assert [chunk for _, chunk, _ in log] == a + c
    assert [seq for seq, _, _ in log] == sorted(seq for seq, _, _ in log)
    assert catalog.last_seq(cid) == log[-1][0]
    assert catalog.changes_since(cid, log[0][0]) == log[1:]
    assert [chunk for _, chunk, _ in catalog.changes_since(other, 0)] == b


def test_lexical_search_folds_accents_and_ranks_the_matching_chunk_first(catalog: Catalog, cid: int) -> None:
    _, ids = catalog.put_document(
        cid, fields("f.md"),
        chunks_of("Cada colaborador tem direito a 30 dias de férias por ano.", "O portal Pessoas recebe pedidos."),
        vectors(2),
    )
    assert [i for i, _ in catalog.lexical_search(cid, "ferias", 5)] == [ids[0]]
    assert [i for i, _ in catalog.lexical_search(cid, "FÉRIAS", 5)] == [ids[0]]
    assert catalog.lexical_search(cid, "ferias", 5, allowed=[ids[1]]) == []
    assert catalog.lexical_search(cid, "the of and", 5) == []  # only stop words: no query at all


def test_english_questions_match_other_forms_of_their_words(catalog: Catalog, cid: int) -> None:
    _, ids = catalog.put_document(
        cid, fields("e.md"),
        chunks_of("The rotations were scheduled by the team leads.", "The office is closed on public holidays."),
        vectors(2),
    )
    assert [i for i, _ in catalog.lexical_search(cid, "Who schedules the rotation?", 5)] == [ids[0]]
    assert [i for i, _ in catalog.lexical_search(cid, "Is the office closing on a holiday?", 5)] == [ids[1]]


def test_a_word_the_query_repeats_weighs_more_in_bm25(catalog: Catalog, cid: int) -> None:
    # Two chunks of equal length, each holding one of the two query words once.
    _, ids = catalog.put_document(
        cid, fields("t.md"), chunks_of("Tariffs raise prices for importers.", "Subsidies lower costs for farmers."),
        vectors(2),
    )
    once = dict(catalog.lexical_search(cid, "tariffs subsidies", 5))
    assert once[ids[0]] == pytest.approx(once[ids[1]], rel=0.05)
    assert [i for i, _ in catalog.lexical_search(cid, "tariffs subsidies tariffs tariffs", 5)] == ids
    assert [i for i, _ in catalog.lexical_search(cid, "subsidies tariffs subsidies subsidies", 5)] == ids[::-1]


def test_over_its_row_budget_bm25_asks_for_the_rarest_terms_counted_by_fts5vocab(catalog: Catalog, cid: int) -> None:
    # "report" is in every chunk, "quarterly" in two, "audit" in one: 6 + 2 + 1 rows between them.
    texts = ["The audit report.", "The quarterly report.", "The quarterly report again."] + ["The report."] * 3
    _, ids = catalog.put_document(cid, fields("b.md"), chunks_of(*texts), vectors(len(texts)))
    assert catalog.term_frequencies(cid, ["audit", "quarter", "report", "nowhere"]) == {
        "audit": 1, "quarter": 2, "report": 6, "nowhere": 0}
    question = "audit quarterly report"
    whole = [i for i, _ in catalog.lexical_search(cid, question, 10, budget=None)]
    assert set(whole) == set(ids)  # every chunk holds "report"
    assert whole == [i for i, _ in catalog.lexical_search(cid, question, 10, budget=9)]  # 9 rows fit: asked whole
    # within 3 rows: "audit" and "quarterly" only, so a chunk holding only "report" is never scored
    assert [i for i, _ in catalog.lexical_search(cid, question, 10, budget=3)] == [ids[0], ids[1], ids[2]]
    assert [i for i, _ in catalog.lexical_search(cid, question, 10, budget=1)] == [ids[0]]  # the rarest alone


def test_headings_are_searchable_through_fts(catalog: Catalog, cid: int) -> None:
    chunks = chunks_of("Shifts last a week.", heading=("On-call",))
    _, ids = catalog.put_document(cid, fields("h.md"), chunks, vectors(1))
    assert [i for i, _ in catalog.lexical_search(cid, "on-call", 5)] == ids


def test_rebuild_fts_restores_deleted_rows_and_drops_orphans(catalog: Catalog, cid: int) -> None:
    _, ids = catalog.put_document(cid, fields("a.md"), chunks_of("a one", "a two", "a three"), vectors(3))
    catalog.db.execute(f"DELETE FROM {fts_table(cid)} WHERE rowid = ?", (ids[1],))
    catalog.db.execute(f"INSERT INTO {fts_table(cid)}(rowid, body) VALUES (999999, 'orphan')")
    assert list(catalog.fts_ids(cid)) == [-999999, ids[0], ids[2]]
    catalog.rebuild_fts(cid)
    assert fts_rowids(catalog) == ids
    assert [i for i, _ in catalog.lexical_search(cid, "two", 5)] == [ids[1]]


def test_deleting_a_collection_removes_everything_it_owned(catalog: Catalog, cid: int) -> None:
    other = catalog.create_collection("other", IDENTITY).id
    catalog.put_document(cid, fields("a.md"), chunks_of("a"), vectors(1))
    _, kept = catalog.put_document(other, fields("b.md"), chunks_of("b"), vectors(1))
    catalog.delete_collection("docs")
    assert catalog.find_collection("docs") is None
    assert table_counts(catalog) == {"documents": 1, "chunks": 1, "fts": 1, "changes": 1}
    assert fts_rowids(catalog) == kept


def written_by_an_older_docqa(tmp_path, text: str, *statements: str) -> tuple[Path, int, list[int]]:
    """A catalog holding one document of `text`, then changed by raw SQL to look as an older docqa left it."""
    import sqlite3

    path = tmp_path / "old.sqlite3"
    catalog = Catalog(path)
    cid = catalog.create_collection("docs", IDENTITY).id
    _, ids = catalog.put_document(cid, fields("a.md"), chunks_of(text), vectors(1))
    catalog.close()
    db = sqlite3.connect(path)
    for statement in statements:
        db.execute(statement.format(fts=fts_table(cid)))
    db.commit()
    db.close()
    return path, cid, ids


def test_a_schema_1_catalog_is_migrated_to_one_fts_table_per_collection(tmp_path) -> None:
    # schema 1: one shared FTS table, none per collection
    path, cid, ids = written_by_an_older_docqa(
        tmp_path, "the rotation lasts a week", "DROP TABLE {fts}", "CREATE VIRTUAL TABLE chunks_fts USING fts5(body)"
    )
    migrated = Catalog(path)
    assert [i for i, _ in migrated.lexical_search(cid, "rotation", 5)] == ids
    names = {r[0] for r in migrated.db.execute("SELECT name FROM sqlite_master")}
    assert "chunks_fts" not in names and fts_table(cid) in names


def test_fts_rows_analysed_by_an_older_docqa_are_rebuilt_when_the_catalog_opens(tmp_path) -> None:
    # unstemmed words and no analysis version recorded
    path, cid, ids = written_by_an_older_docqa(
        tmp_path, "As férias são marcadas pelos gestores",
        "UPDATE {fts} SET body = 'as ferias sao marcadas pelos gestores'", "DELETE FROM meta WHERE key = 'analysis_version'",
    )
    reopened = Catalog(path)
    assert [i for i, _ in reopened.lexical_search(cid, "Quando a férias é marcada?", 5)] == ids
    stored = reopened.db.execute("SELECT value FROM meta WHERE key = 'analysis_version'").fetchone()[0]
    assert stored == str(catalog_module.ANALYSIS_VERSION)


def test_lexical_search_takes_more_allowed_ids_than_sqlite_binds_variables(catalog: Catalog, cid: int) -> None:
    _, ids = catalog.put_document(cid, fields("a.md"), chunks_of("the rotation lasts a week", "rotation handover"), vectors(2))
    import sqlite3

    catalog.db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766)  # stock builds' cap (this one's may be higher)
    allowed = list(range(10**6, 10**6 + 40_000)) + [ids[1]]
    assert [i for i, _ in catalog.lexical_search(cid, "rotation", 5, allowed)] == [ids[1]]
    assert catalog.lexical_search(cid, "rotation", 5, []) == []
