"""The embedded store's vector file: one that cannot be trusted is rebuilt from the catalog and the log says why;
a save that fails while another error is in flight never takes that error's place."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Callable

import pytest

import indexes.vectors as vectors_module
from indexes.embedded import EmbeddedStore
from indexes.embedders import EmbedderSpec
from indexes.search import Searcher
from indexes.types import Collection
from indexes.vectors import VectorIndex
from ingest.pipeline import FileResult, IngestPipeline, ProgressSink
from test_faults import _OsWithFullDisk

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
QUERIES = ["How many nodes does the staging cluster have?", "vacation days policy", "how do I reset my password"]


def reopen(data_dir: Path, embedder) -> EmbeddedStore:
    """The data directory as a fresh process sees it: nothing cached."""
    store = EmbeddedStore(data_dir, EmbedderSpec())
    store.embedders.add(EmbedderSpec(), embedder)
    return store


@pytest.fixture(scope="module")
def ingested_once(tmp_path_factory, embedder) -> Path:
    """The samples ingested once per module; tests damage private copies."""
    data = tmp_path_factory.mktemp("vectors") / "data"
    store = reopen(data, embedder)
    IngestPipeline(store, store.ensure_collection("default", embedder), workers=0).ingest_paths([SAMPLES])
    return data


def dense(store: EmbeddedStore, collection: Collection) -> dict[str, list[tuple[int, float]]]:
    searcher = Searcher(store)
    return {q: [(h.chunk_id, h.score) for h in searcher.search(collection, q, mode="dense", k=5)] for q in QUERIES}


def truncated(path: Path, collection: Collection, store: EmbeddedStore) -> str:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return "cannot be read"


def ahead_of_the_catalog(path: Path, collection: Collection, store: EmbeddedStore) -> str:
    index = VectorIndex.load(path)
    index.seq = store.catalog.last_seq(collection.id) + 10  # as if the catalog had been restored from an older copy
    index.save(path)
    return "is newer than the catalog"


def of_another_dimension(path: Path, collection: Collection, store: EmbeddedStore) -> str:
    VectorIndex(8).save(path)
    return "holds 8-dimensional vectors, the collection's are 384"


@pytest.mark.parametrize("damage", [truncated, ahead_of_the_catalog, of_another_dimension], ids=lambda d: d.__name__)
def test_an_untrustworthy_vector_file_is_rebuilt_from_the_catalog_and_logged(
    ingested_once: Path, tmp_path: Path, embedder, caplog, damage: Callable[..., str],
) -> None:
    shutil.copytree(ingested_once, tmp_path / "data")
    store = reopen(tmp_path / "data", embedder)
    collection = store.get_collection("default")
    expected = dense(store, collection)
    path = store.vector_path(collection)
    reason = damage(path, collection, store)

    reopened = reopen(store.data_dir, embedder)
    with caplog.at_level(logging.WARNING, logger="docqa.indexes"):
        found = dense(reopened, collection)

    for query in QUERIES:
        assert [c for c, _ in found[query]] == [c for c, _ in expected[query]], query
        assert [s for _, s in found[query]] == pytest.approx([s for _, s in expected[query]]), query
    [record] = [r for r in caplog.records if r.name == "docqa.indexes"]
    assert record.levelno == logging.WARNING
    assert str(path) in record.getMessage() and reason in record.getMessage() and "rebuilding" in record.getMessage()
    reopened.flush(collection)
    assert reopened.check(collection).ok  # the rebuilt index replaced the bad file


class CtrlCAtTheFirstCommit(ProgressSink):
    """Ctrl-C arrives just after the first document is committed."""

    def file_done(self, result: FileResult) -> None:
        raise KeyboardInterrupt


def test_a_vector_save_failing_during_ctrl_c_leaves_the_ctrl_c_in_charge(
    store: EmbeddedStore, embedder, samples_copy: Path, monkeypatch, caplog,
) -> None:
    collection = store.ensure_collection("default", embedder)
    monkeypatch.setattr(vectors_module, "os", _OsWithFullDisk())  # every vector save now fails as on a full disk

    with caplog.at_level(logging.WARNING, logger="docqa.ingest"), pytest.raises(KeyboardInterrupt) as caught:
        IngestPipeline(store, collection, workers=0).ingest_paths([samples_copy], progress=CtrlCAtTheFirstCommit())

    [note] = caught.value.__notes__
    assert note.startswith("saving the vectors failed too: cannot write vector index") and "No space left" in note
    assert "saving the vectors failed after KeyboardInterrupt" in caplog.text and "No space left" in caplog.text
    monkeypatch.undo()
    committed = list(store.catalog.chunk_ids(collection.id))
    assert committed  # the document committed before Ctrl-C stays
    assert list(reopen(store.data_dir, embedder).vectors(collection).ids()) == committed
