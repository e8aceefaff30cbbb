"""An e-mail's attachments through the real pipeline into a real store: each a document of its own, attached to its
message, replaced and removed with it (also when it fails), retried while the store does not hold one as ok (the
message itself is not stored again); the CLI's remove and the upload job too."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexes.embedded import EmbeddedStore
from indexes.errors import StorageError
from indexes.search import Searcher
from indexes.types import Collection
from ingest.pipeline import IngestPipeline, remove_document
from office_files import INVOICE_FACT, NOTES_FACT, eml_bytes, epub_bytes, PUMP_BOOK


@pytest.fixture
def mail(tmp_path: Path) -> Path:
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "kestrel.eml").write_bytes(eml_bytes())
    return folder


def documents(store: EmbeddedStore, collection: Collection) -> dict[str, dict]:
    return {d.source: d.metadata for d in store.list_documents(collection)}


def test_attachments_become_documents_of_their_own_attached_to_the_message(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, mail: Path
) -> None:
    message = str(mail / "kestrel.eml")
    report = pipeline.ingest_paths([mail], metadata={"team": "ops"})
    assert not report.failures
    assert {r.source: r.status for r in report.results} == {
        message: "ingested", f"{message}#invoice.pdf": "ingested", f"{message}#notes.txt": "ingested",
    }
    docs = documents(store, collection)
    assert docs[f"{message}#invoice.pdf"] == {"team": "ops", "attached_to": message}
    assert docs[message]["team"] == "ops" and docs[message]["from"] == "Ana Souza <ana@example.org>"
    assert docs[message]["date"] == "2026-03-03T09:15:00+00:00"
    assert store.find_document(collection, message).warnings == [
        "attachment firmware.bin not ingested: unsupported file type"
    ]
    hit = Searcher(store).search(collection, "How much is the Kestrel turbine overhaul invoice?", k=1)[0]
    assert hit.source == f"{message}#invoice.pdf" and "48,900 euros" in hit.text
    assert hit.metadata["attached_to"] == message and hit.locator == {"kind": "page", "page": 1}
    assert store.check(collection).ok


def test_an_unchanged_message_leaves_its_attachments_alone(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, mail: Path
) -> None:
    pipeline.ingest_paths([mail])
    seq = store.catalog.last_seq(collection.id)
    before = {d.source: (d.id, d.updated_at) for d in store.list_documents(collection)}
    report = pipeline.ingest_paths([mail], sync=True)
    assert report.counts()["unchanged"] == 1 and len(report.results) == 1
    assert {d.source: (d.id, d.updated_at) for d in store.list_documents(collection)} == before
    assert store.catalog.last_seq(collection.id) == seq


def test_metadata_read_from_the_message_does_not_make_it_changed_but_metadata_given_does(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, mail: Path
) -> None:
    message = str(mail / "kestrel.eml")
    pipeline.ingest_paths([mail], metadata={"team": "ops", "from": "the archive"})
    assert documents(store, collection)[message]["from"] == "the archive"  # given metadata wins over the header
    assert pipeline.ingest_paths([mail], metadata={"team": "ops", "from": "the archive"}).counts()["unchanged"] == 1
    report = pipeline.ingest_paths([mail], metadata={"from": "the archive"})
    assert {r.source: r.status for r in report.results}[message] == "replaced"
    assert "team" not in documents(store, collection)[message]
    report = pipeline.ingest_paths([mail])  # the given "from" dropped: the header's is back
    assert {r.source: r.status for r in report.results}[message] == "replaced"
    assert documents(store, collection)[message]["from"] == "Ana Souza <ana@example.org>"
    assert pipeline.ingest_paths([mail]).counts()["unchanged"] == 1


def test_an_attachment_the_store_lost_is_ingested_on_the_next_run_without_storing_the_message_again(
    monkeypatch, store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, mail: Path
) -> None:
    message = str(mail / "kestrel.eml")
    put_document = store.put_document

    def disk_gone_for_the_invoice(collection, fields, *args, **kwargs):
        if fields.source.endswith("#invoice.pdf"):
            raise StorageError("disk went away")
        return put_document(collection, fields, *args, **kwargs)

    monkeypatch.setattr(store, "put_document", disk_gone_for_the_invoice)
    assert {r.source: r.status for r in pipeline.ingest_paths([mail]).results}[f"{message}#invoice.pdf"] == "failed"
    assert f"{message}#invoice.pdf" not in documents(store, collection)
    monkeypatch.setattr(store, "put_document", put_document)
    before = store.find_document(collection, message)
    report = pipeline.ingest_paths([mail])
    assert {r.source: r.status for r in report.results} == {
        message: "unchanged", f"{message}#invoice.pdf": "ingested", f"{message}#notes.txt": "unchanged",
    }
    after = store.find_document(collection, message)
    assert (after.id, after.updated_at) == (before.id, before.updated_at)
    assert Searcher(store).search(collection, INVOICE_FACT, k=1)[0].source == f"{message}#invoice.pdf"
    assert pipeline.ingest_paths([mail]).counts()["unchanged"] == 1  # all there: the message is not parsed again
    assert store.check(collection).ok


def test_a_message_that_fails_takes_its_attachments_with_it(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, mail: Path
) -> None:
    message = str(mail / "kestrel.eml")
    pipeline.ingest_paths([mail])
    (mail / "kestrel.eml").write_bytes(b"\x00\x01 not an e-mail any more")
    report = pipeline.ingest_paths([mail])
    assert {r.source: r.status for r in report.results} == {
        message: "failed", f"{message}#invoice.pdf": "removed", f"{message}#notes.txt": "removed",
    }
    assert [(d.source, d.status) for d in store.list_documents(collection)] == [(message, "failed")]
    assert Searcher(store).search(collection, INVOICE_FACT, k=1) == []
    assert store.check(collection).ok


def test_a_changed_message_replaces_its_attachments_and_drops_those_gone(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, mail: Path
) -> None:
    message = str(mail / "kestrel.eml")
    pipeline.ingest_paths([mail])
    invoice_id = store.find_document(collection, f"{message}#invoice.pdf").id
    (mail / "kestrel.eml").write_bytes(eml_bytes(notes=False, body="Resending: the invoice only, notes to follow."))
    report = pipeline.ingest_paths([mail])
    assert {r.source: r.status for r in report.results} == {
        message: "replaced", f"{message}#invoice.pdf": "unchanged", f"{message}#notes.txt": "removed",
    }
    assert set(documents(store, collection)) == {message, f"{message}#invoice.pdf"}
    assert store.find_document(collection, f"{message}#invoice.pdf").id == invoice_id  # the same bytes: kept
    assert not [h for h in Searcher(store).search(collection, NOTES_FACT, k=5) if h.source.endswith("notes.txt")]
    assert store.check(collection).ok


def test_sync_keeps_attachments_of_messages_that_remain_and_removes_those_of_messages_gone(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, mail: Path
) -> None:
    (mail / "book.epub").write_bytes(epub_bytes(PUMP_BOOK))
    pipeline.ingest_paths([mail])
    (mail / "book.epub").unlink()
    report = pipeline.ingest_paths([mail], sync=True)
    assert report.counts()["removed"] == 1 and len(documents(store, collection)) == 3  # the message and 2 attachments
    (mail / "kestrel.eml").unlink()
    report = pipeline.ingest_paths([mail], sync=True)
    assert report.counts()["removed"] == 3 and documents(store, collection) == {}
    assert store.check(collection).ok


def test_removing_a_message_removes_its_attachments(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, mail: Path
) -> None:
    message = str(mail / "kestrel.eml")
    pipeline.ingest_paths([mail])
    removed = remove_document(store, collection, store.find_document(collection, message))
    assert [d.source for d in removed] == [message, f"{message}#invoice.pdf", f"{message}#notes.txt"]
    assert documents(store, collection) == {}
    assert store.check(collection).ok


def test_an_attachment_that_fails_fails_alone_and_two_of_one_name_get_their_own_documents(
    store: EmbeddedStore, collection: Collection, pipeline: IngestPipeline, tmp_path: Path
) -> None:
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = "Two reports"
    message.set_content("Both weekly reports are attached.")
    message.add_attachment(b"North line throughput rose to 412 units.", maintype="text", subtype="plain",
                           filename="report.txt")
    message.add_attachment(b"South line throughput fell to 96 units.", maintype="text", subtype="plain",
                           filename="report.txt")
    message.add_attachment(b"%PDF-1.7 this is no pdf", maintype="application", subtype="pdf", filename="scan.pdf")
    path = tmp_path / "two.eml"
    path.write_bytes(message.as_bytes())
    report = pipeline.ingest_paths([path])
    source = str(path.resolve())
    statuses = {r.source: r.status for r in report.results}
    assert statuses == {source: "ingested", f"{source}#report.txt": "ingested", f"{source}#report (2).txt": "ingested",
                        f"{source}#scan.pdf": "failed"}
    assert store.find_document(collection, f"{source}#scan.pdf").metadata == {"attached_to": source}
    hit = Searcher(store).search(collection, "How far did South line throughput fall?", k=1)[0]
    assert hit.source == f"{source}#report (2).txt"
    before = store.find_document(collection, source)
    report = pipeline.ingest_paths([path])  # a failed attachment is retried, as a failed file is; the message is kept
    assert {r.source: r.status for r in report.results} == {
        source: "unchanged", f"{source}#report.txt": "unchanged", f"{source}#report (2).txt": "unchanged",
        f"{source}#scan.pdf": "failed",
    }
    assert store.find_document(collection, source).updated_at == before.updated_at


def test_the_cli_reports_each_attachment_and_removes_them_with_their_message(
    monkeypatch, embedder, mail: Path, tmp_path: Path
) -> None:
    from test_cli import docqa, docqa_json, use_session_model

    use_session_model(monkeypatch, embedder)
    data_dir = tmp_path / "data"
    message = str((mail / "kestrel.eml").resolve())
    report = docqa_json(data_dir, "ingest", mail, "--workers", "0")
    assert [(r["source"], r["status"]) for r in report["results"]] == [
        (message, "ingested"), (f"{message}#invoice.pdf", "ingested"), (f"{message}#notes.txt", "ingested"),
    ]
    result = docqa(data_dir, "remove", message)
    assert result.exit_code == 0, result.stdout
    assert result.stdout.count("removed ") == 3 and f"removed {message}#notes.txt" in result.stdout
    assert docqa_json(data_dir, "status")["collections"][0]["documents"] == 0


def test_an_uploaded_message_brings_its_attachments_and_deleting_it_takes_them(embedder, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from service_app import make_app, wait_for_job

    with TestClient(make_app(tmp_path / "data", embedder)) as client:
        upload = client.post("/v1/collections/default/documents", files=[("files", ("kestrel.eml", eml_bytes()))])
        job = wait_for_job(client, upload.json()["id"])
        assert job["state"] == "succeeded"
        assert sorted((f["source"], f["status"]) for f in job["files"]) == [
            ("kestrel.eml", "ingested"), ("kestrel.eml#invoice.pdf", "ingested"), ("kestrel.eml#notes.txt", "ingested"),
        ]
        hit = client.post("/v1/search", json={"query": INVOICE_FACT, "top_k": 1}).json()["hits"][0]
        assert hit["source"] == "kestrel.eml#invoice.pdf"
        document = client.get(f"/v1/collections/default/documents/{hit['document_id']}").json()
        assert document["metadata"] == {"attached_to": "kestrel.eml"}
        message_id = next(f["document_id"] for f in job["files"] if f["source"] == "kestrel.eml")
        assert client.delete(f"/v1/collections/default/documents/{message_id}").status_code == 204
        assert client.get("/v1/collections/default/documents").json() == []
