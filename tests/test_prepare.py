"""The pure prepare step (ingest/prepare.py): plain data in and out, no store; the embedder rebuilt from a
collection's record alone; the commit step is the pipeline's."""

from __future__ import annotations

import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from indexes.embedders import EmbedderSpec
from indexes.errors import EmbedderMismatch
from ingest.chunking import ChunkingOptions
from ingest.prepare import PrepareSpec, PrepareTask, SourceFile, embedder_for, local_fields, prepare
from office_files import eml_bytes

REPO = Path(__file__).resolve().parents[1]


def _spec(collection, embedder) -> PrepareSpec:
    return PrepareSpec(collection.embedder, ChunkingOptions(max_tokens=embedder.identity.max_tokens))


def test_from_identity_rebuilds_the_recorded_model_on_this_machines_device(collection) -> None:
    spec = EmbedderSpec.from_identity(collection.embedder, device="cuda", batch_size=16)
    assert (spec.backend, spec.model, spec.precision) == (
        collection.embedder["backend"], collection.embedder["model"], collection.embedder["precision"])
    assert (spec.device, spec.batch_size) == ("cuda", 16)
    assert EmbedderSpec.from_identity(collection.embedder, precision="fp16").precision == "fp16"


def test_a_prepared_document_is_what_the_pipeline_commits(store, collection, embedder, pipeline, samples_copy) -> None:
    path = samples_copy / "handbook.md"
    prepared = prepare(PrepareTask(SourceFile(path, str(path))), _spec(collection, embedder), embedder)
    assert prepared.failure is None and prepared.chunks
    assert prepared.fields.sha256 == local_fields(SourceFile(path, str(path))).sha256

    pipeline.ingest([SourceFile(path, str(path))])
    stored = store.export_document(store.find_document(collection, str(path)).id)
    assert [(c.text, c.start, c.end) for c in prepared.chunks] == [(c.text, c.start, c.end) for c in stored.chunks]
    # the catalog keeps float16 vectors (schema 6): the prepared ones, rounded so, exactly
    assert np.array_equal(prepared.vectors.astype(np.float16).astype(np.float32), stored.embeddings)
    assert stored.fields.title == prepared.fields.title and stored.fields.text == prepared.fields.text


def test_a_prepared_document_survives_pickling_as_a_worker_sends_it(collection, embedder, samples_copy) -> None:
    path = samples_copy / "onboarding.docx"
    prepared = prepare(PrepareTask(SourceFile(path, str(path))), _spec(collection, embedder), embedder)
    back = pickle.loads(pickle.dumps(prepared))
    assert back.chunks == prepared.chunks and back.fields == prepared.fields
    assert np.array_equal(back.vectors, prepared.vectors)
    assert len(back.sentences) == len(prepared.chunks) and any(s is not None for s in back.sentences)


def test_a_failure_is_data_naming_the_reason(collection, embedder, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n this is not a PDF body")
    prepared = prepare(PrepareTask(SourceFile(broken, str(broken))), _spec(collection, embedder), embedder)
    assert prepared.failure and not prepared.chunks and prepared.vectors is None
    gone = prepare(PrepareTask(SourceFile(tmp_path / "gone.md", "gone.md")), _spec(collection, embedder), embedder)
    assert gone.failure.startswith("cannot read file") and gone.transient


def test_attachments_come_prepared_with_their_message_and_unchanged_ones_are_not_parsed(
    collection, embedder, tmp_path: Path,
) -> None:
    path = tmp_path / "kestrel.eml"
    path.write_bytes(eml_bytes())
    spec = _spec(collection, embedder)
    first = prepare(PrepareTask(SourceFile(path, "kestrel.eml")), spec, embedder)
    sources = {a.file.source: a for a in first.attachments}
    assert set(sources) == {"kestrel.eml#invoice.pdf", "kestrel.eml#notes.txt"}
    assert all(a.chunks and a.vectors is not None and a.file.metadata["attached_to"] == "kestrel.eml"
               for a in sources.values())

    invoice = sources["kestrel.eml#invoice.pdf"]
    again = prepare(PrepareTask(SourceFile(path, "kestrel.eml"),
                                unchanged=frozenset({(invoice.file.source, invoice.fields.sha256)})), spec, embedder)
    by_source = {a.file.source: a for a in again.attachments}
    assert by_source["kestrel.eml#invoice.pdf"].unchanged and not by_source["kestrel.eml#invoice.pdf"].chunks
    assert not by_source["kestrel.eml#notes.txt"].unchanged and by_source["kestrel.eml#notes.txt"].chunks


def test_a_worker_refuses_a_model_that_is_not_the_collections(collection, embedder) -> None:
    recorded = {**collection.embedder, "dim": collection.embedder["dim"] * 2}  # another model behind the same name
    with pytest.raises(EmbedderMismatch, match="dim"):
        embedder_for(replace(_spec(collection, embedder), embedder=recorded))


def test_a_fresh_process_prepares_from_the_record_alone(collection, embedder, samples_copy, tmp_path: Path) -> None:
    """What a worker on another node does: no store, nothing but the task and the spec, pickled."""
    path = samples_copy / "handbook.md"
    task, spec = PrepareTask(SourceFile(path, str(path))), _spec(collection, embedder)
    (tmp_path / "job.pkl").write_bytes(pickle.dumps((task, spec)))
    script = (
        "import pickle, sys; from ingest.prepare import prepare;"
        "task, spec = pickle.load(open(sys.argv[1], 'rb'));"
        "open(sys.argv[2], 'wb').write(pickle.dumps(prepare(task, spec)))"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "job.pkl"), str(tmp_path / "out.pkl")], check=True,
                   cwd=REPO, timeout=300)
    theirs = pickle.loads((tmp_path / "out.pkl").read_bytes())
    ours = prepare(task, spec, embedder)
    assert theirs.chunks == ours.chunks
    assert np.min(np.sum(theirs.vectors * ours.vectors, axis=1)) >= 0.9999
