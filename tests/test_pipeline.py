"""The ingestion pipeline end to end: real model, real files, real SQLite and FAISS."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from indexes.embedded import EmbeddedStore
from indexes.types import Collection
from ingest.pipeline import IngestLimits, IngestPipeline, SourceFile

SAMPLE_NAMES = [
    "atlas-report.pdf", "faq.html", "handbook.md", "laboratorio-ia.html", "onboarding.docx", "politica-de-ferias.md",
]


def chunk_ids_of(store: EmbeddedStore, collection: Collection, path: Path) -> list[int]:
    doc = store.catalog.find_document(collection.id, str(path.resolve()))
    return [c["id"] for c in store.catalog.document_chunks(doc.id)]


def fts_rowids(store: EmbeddedStore) -> set[int]:
    return {int(i) for c in store.catalog.list_collections() for i in store.catalog.fts_ids(c.id)}


def test_ingesting_the_samples_stores_every_document_with_its_chunks(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, samples_copy: Path
) -> None:
    report = pipeline.ingest_paths([samples_copy])
    assert report.counts()["ingested"] == 6 and not report.failures
    docs = store.catalog.list_documents(collection.id)
    assert [Path(d.source).name for d in docs] == SAMPLE_NAMES
    assert all(d.status == "ok" and d.chunk_count > 0 for d in docs)
    assert {Path(d.source).name: d.pages for d in docs}["atlas-report.pdf"] == 4
    chunk_ids = set(store.catalog.chunk_ids(collection.id))
    assert report.chunks == len(chunk_ids)
    assert fts_rowids(store) == chunk_ids
    assert set(store.vectors(collection).ids()) == chunk_ids
    assert store.check(collection).ok


def test_reingesting_an_unchanged_file_writes_nothing(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, samples_copy: Path
) -> None:
    pipeline.ingest_paths([samples_copy])
    seq = store.catalog.last_seq(collection.id)
    ids = list(store.catalog.chunk_ids(collection.id))
    updated = {d.source: d.updated_at for d in store.catalog.list_documents(collection.id)}
    report = pipeline.ingest_paths([samples_copy])
    assert {r.status for r in report.results} == {"unchanged"}
    assert len(report.results) == 6 and report.chunks == 0
    assert store.catalog.last_seq(collection.id) == seq
    assert list(store.catalog.chunk_ids(collection.id)) == ids
    assert {d.source: d.updated_at for d in store.catalog.list_documents(collection.id)} == updated


def test_touching_a_file_without_changing_its_bytes_keeps_it_unchanged(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, samples_copy: Path
) -> None:
    pipeline.ingest_paths([samples_copy / "faq.html"])
    seq = store.catalog.last_seq(collection.id)
    os.utime(samples_copy / "faq.html", (1_000_000, 1_000_000))
    report = pipeline.ingest_paths([samples_copy / "faq.html"])
    assert [r.status for r in report.results] == ["unchanged"]
    assert store.catalog.last_seq(collection.id) == seq


def test_a_changed_file_is_replaced_and_its_old_chunks_vanish_everywhere(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, samples_copy: Path
) -> None:
    files = [samples_copy / "handbook.md", samples_copy / "faq.html", samples_copy / "politica-de-ferias.md"]
    pipeline.ingest_paths(files)
    handbook = samples_copy / "handbook.md"
    old_ids = chunk_ids_of(store, collection, handbook)
    untouched = chunk_ids_of(store, collection, samples_copy / "faq.html")
    handbook.write_text(handbook.read_text() + "\n## Parking\n\nThe office garage has 40 spaces for bicycles.\n")
    report = pipeline.ingest_paths(files)
    statuses = {Path(r.source).name: r.status for r in report.results}
    assert statuses.pop("handbook.md") == "replaced"
    assert set(statuses.values()) == {"unchanged"}
    new_ids = chunk_ids_of(store, collection, handbook)
    assert new_ids and set(old_ids).isdisjoint(new_ids)
    chunk_ids = set(store.catalog.chunk_ids(collection.id))
    assert not chunk_ids & set(old_ids)
    assert not fts_rowids(store) & set(old_ids)
    assert not set(store.vectors(collection).ids()) & set(old_ids)
    reopened = EmbeddedStore(store.data_dir)
    reopened.embedders = store.embedders
    assert set(reopened.vectors(collection).ids()) == chunk_ids
    assert set(untouched) <= chunk_ids
    assert any("40 spaces" in c["text"] for c in store.catalog.document_chunks(
        store.catalog.find_document(collection.id, str(handbook.resolve())).id))


def test_changing_the_metadata_replaces_an_unchanged_file(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, samples_copy: Path
) -> None:
    pipeline.ingest_paths([samples_copy / "faq.html"], metadata={"team": "support"})
    report = pipeline.ingest_paths([samples_copy / "faq.html"], metadata={"team": "billing"})
    assert [r.status for r in report.results] == ["replaced"]
    assert store.catalog.list_documents(collection.id)[0].metadata == {"team": "billing"}


def test_sync_removes_documents_whose_files_were_deleted_under_the_walked_roots_only(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, samples_copy: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(samples_copy / "onboarding.docx", elsewhere / "onboarding.docx")
    pipeline.ingest_paths([samples_copy])
    pipeline.ingest_paths([elsewhere])
    sibling = tmp_path / "docs-archive"  # shares the prefix "docs" but is not under it
    sibling.mkdir()
    (sibling / "old.md").write_text("# Old\n\nAn archived note about parking.")
    pipeline.ingest_paths([sibling])
    gone_ids = chunk_ids_of(store, collection, samples_copy / "faq.html")
    (samples_copy / "faq.html").unlink()
    (elsewhere / "onboarding.docx").unlink()  # deleted, but not under the root we sync
    (sibling / "old.md").unlink()  # likewise

    report = pipeline.ingest_paths([samples_copy], sync=True)

    removed = [r for r in report.results if r.status == "removed"]
    assert [Path(r.source).name for r in removed] == ["faq.html"]
    assert removed[0].chunks == len(gone_ids)
    names = sorted(Path(d.source).name for d in store.catalog.list_documents(collection.id))
    assert names == [
        "atlas-report.pdf", "handbook.md", "laboratorio-ia.html", "old.md", "onboarding.docx", "politica-de-ferias.md",
    ]
    assert not set(store.vectors(collection).ids()) & set(gone_ids)
    assert store.check(collection).ok


def test_sync_without_deletions_removes_nothing(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, samples_copy: Path
) -> None:
    pipeline.ingest_paths([samples_copy])
    report = pipeline.ingest_paths([samples_copy], sync=True)
    assert report.counts()["removed"] == 0
    assert len(store.catalog.list_documents(collection.id)) == 6


@pytest.fixture
def bad_batch(samples_copy: Path) -> Path:
    """The samples plus a corrupt PDF, an empty file and binary junk named .txt."""
    (samples_copy / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntruncated")
    (samples_copy / "empty.md").write_bytes(b"")
    (samples_copy / "junk.txt").write_bytes(bytes(range(256)) * 16)
    return samples_copy


def test_a_batch_with_bad_files_ingests_the_good_ones_and_records_each_failure(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, bad_batch: Path
) -> None:
    report = pipeline.ingest_paths([bad_batch])
    reasons = {Path(r.source).name: r.reason for r in report.failures}
    assert sorted(reasons) == ["broken.pdf", "empty.md", "junk.txt"]
    assert "pdf" in reasons["broken.pdf"].lower()
    assert "empty" in reasons["empty.md"].lower()
    assert "binary" in reasons["junk.txt"].lower()
    assert report.counts() == {"ingested": 6, "unchanged": 0, "replaced": 0, "removed": 0, "failed": 3}

    failed = store.catalog.list_documents(collection.id, status="failed")
    assert {Path(d.source).name: d.error for d in failed} == reasons
    assert all(d.chunk_count == 0 for d in failed)
    failed_ids = [d.id for d in failed]
    orphans = store.catalog.db.execute(
        f"SELECT COUNT(*) FROM chunks WHERE document_id IN ({','.join('?' * len(failed_ids))})", failed_ids
    ).fetchone()[0]
    assert orphans == 0
    assert [Path(d.source).name for d in store.catalog.list_documents(collection.id, status="ok")] == SAMPLE_NAMES
    assert store.check(collection).ok


def test_a_file_that_becomes_unreadable_replaces_its_document_with_a_failure(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, samples_copy: Path
) -> None:
    pdf = samples_copy / "atlas-report.pdf"
    pipeline.ingest_paths([pdf])
    old_ids = chunk_ids_of(store, collection, pdf)
    pdf.write_bytes(pdf.read_bytes()[:200])
    report = pipeline.ingest_paths([pdf])
    assert [r.status for r in report.results] == ["failed"]
    doc = store.catalog.find_document(collection.id, str(pdf.resolve()))
    assert (doc.status, doc.chunk_count) == ("failed", 0)
    assert not set(store.vectors(collection).ids()) & set(old_ids)
    assert store.check(collection).ok


def test_a_failed_file_that_is_fixed_is_ingested_on_the_next_run(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, tmp_path: Path
) -> None:
    note = tmp_path / "note.md"
    note.write_bytes(b"")
    assert [r.status for r in pipeline.ingest_paths([note]).results] == ["failed"]
    note.write_text("# Note\n\nThe coffee machine is on the third floor.")
    assert [r.status for r in pipeline.ingest_paths([note]).results] == ["ingested"]
    doc = store.catalog.find_document(collection.id, str(note.resolve()))
    assert (doc.status, doc.error, doc.chunk_count) == ("ok", None, 1)


def test_sources_are_the_names_given_and_metadata_is_stored_per_file(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, samples_copy: Path
) -> None:
    report = pipeline.ingest([
        SourceFile(samples_copy / "handbook.md", "upload://handbook.md", {"lang": "en"}),
        SourceFile(samples_copy / "politica-de-ferias.md", "upload://ferias.md", {"lang": "pt"}),
    ])
    assert [r.status for r in report.results] == ["ingested", "ingested"]
    docs = {d.source: d.metadata for d in store.catalog.list_documents(collection.id)}
    assert docs == {"upload://handbook.md": {"lang": "en"}, "upload://ferias.md": {"lang": "pt"}}


def test_sync_with_a_glob_keeps_documents_whose_files_still_exist(store, tmp_path):
    from ingest.pipeline import IngestPipeline

    docs = tmp_path / "globbed"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nAlpha notes about the cluster.")
    (docs / "b.txt").write_text("Beta notes about the rotation.")
    collection = store.ensure_collection("globbed")
    pipeline = IngestPipeline(store, collection, workers=0)
    pipeline.ingest_paths([docs])
    report = pipeline.ingest_paths([docs], globs=["*.md"], sync=True)
    assert report.counts()["removed"] == 0
    assert len(store.catalog.list_documents(collection.id)) == 2
    (docs / "b.txt").unlink()
    report = pipeline.ingest_paths([docs], globs=["*.md"], sync=True)
    assert [r.source for r in report.results if r.status == "removed"] == [str((docs / "b.txt").resolve())]


def test_a_parse_stopped_by_the_time_limit_keeps_the_indexed_version(store, tmp_path):
    from ingest.pipeline import IngestPipeline

    folder = tmp_path / "timed"
    folder.mkdir()
    note = folder / "note.md"
    note.write_text("# Note\n\nThe rotation lasts one week.")
    collection = store.ensure_collection("timed")
    IngestPipeline(store, collection, workers=0).ingest_paths([folder])
    before = store.catalog.find_document(collection.id, str(note.resolve()))
    # ~50 ms of parsing and 10 MB to send back: far past the limit even when a busy machine delays the check
    note.write_text("# Note\n\nThe rotation lasts two weeks.\n\n" + "More text. " * 1_000_000)
    report = IngestPipeline(store, collection, limits=IngestLimits(max_parse_seconds=0.0001), workers=0).ingest_paths([folder])
    [result] = report.results
    assert result.status == "failed" and "parsing took longer" in result.reason and "kept" in result.reason
    after = store.catalog.find_document(collection.id, str(note.resolve()))
    assert after.status == "ok" and after.id == before.id and after.chunk_count == before.chunk_count
