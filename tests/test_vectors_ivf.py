"""The IVF vector index: the switch at the threshold, deletes and replaces, `check` as exact as for a flat
index, recall against exact search on real embeddings, restarts that never retrain, and mapped files."""

from __future__ import annotations

import gzip
import json
import re
import struct
from pathlib import Path

import faiss
import numpy as np
import pytest

import indexes.vectors as vectors_module
from indexes.backends import StoreOptions
from indexes.embedded import EmbeddedStore
from indexes.embedders import EmbedderSpec
from indexes.errors import InvalidInput
from indexes.filters import Filters
from indexes.store import IndexChoice, SearchQuery
from indexes.types import ChunkInput, Collection, DocumentFields
from indexes.vectors import IndexParams, VectorIndex

PER_DOCUMENT = 20
THRESHOLD = 300


@pytest.fixture(scope="module")
def passages(shared) -> list[str]:
    """3000 real passages: the SQuAD v2 dev-half contexts two sentences at a time (1984), then the openings of
    ArguAna arguments (600 characters: MiniLM embeds short passages fast on 2 cores)."""
    squad = json.loads(shared("eval", "squad-v2.0-dev-half", "dev-v2.0.json").read_text())
    texts: list[str] = []
    for article in squad["data"]:
        for paragraph in article["paragraphs"]:
            sentences = re.split(r"(?<=[.!?])\s+", paragraph["context"])
            texts += [" ".join(sentences[i : i + 2]) for i in range(0, len(sentences), 2)]
    texts = list(dict.fromkeys(texts))
    with gzip.open(shared("eval", "beir-arguana", "corpus.jsonl.gz"), "rt") as fh:
        for line in fh:
            if len(texts) >= 3000:
                break
            texts.append(json.loads(line)["text"][:600])
    return texts[:3000]


@pytest.fixture(scope="module")
def real_vectors(passages: list[str], embedder) -> np.ndarray:
    """The passages embedded by the bundled MiniLM, once per module."""
    return np.asarray(embedder.embed_documents(passages), dtype=np.float32)


@pytest.fixture(scope="module")
def real_questions(shared, embedder) -> np.ndarray:
    """200 real SQuAD questions, embedded as queries: held out from everything stored."""
    squad = json.loads(shared("eval", "squad-v2.0-dev-half", "dev-v2.0.json").read_text())
    questions = [q["question"] for a in squad["data"] for p in a["paragraphs"] for q in p["qas"]][::20][:200]
    return np.vstack([embedder.embed_query(q) for q in questions]).astype(np.float32)


def ivf_store(path: Path, embedder, **options) -> EmbeddedStore:
    store = EmbeddedStore(path, EmbedderSpec(), options=StoreOptions(**{"ivf_threshold": THRESHOLD, **options}))
    store.embedders.add(EmbedderSpec(), embedder)
    return store


def put(store: EmbeddedStore, collection: Collection, n: int, vectors: np.ndarray, source: str,
        texts: list[str] | None = None) -> list[int]:
    texts = texts or [f"{source} {i}" for i in range(n)]
    chunks = [ChunkInput(t, t, 0, len(t)) for t in texts[:n]]
    return store.put_document(collection, DocumentFields(source, f"sha-{source}", 1), chunks, vectors[:n])[1]


def fill(store: EmbeddedStore, collection: Collection, vectors: np.ndarray, documents: int) -> dict[str, list[int]]:
    """`documents` documents of PER_DOCUMENT real vectors each, in order."""
    return {f"doc{d}": put(store, collection, PER_DOCUMENT, vectors[d * PER_DOCUMENT :], f"doc{d}") for d in range(documents)}


def dense(store: EmbeddedStore, collection: Collection, vector: np.ndarray, k: int = 10,
          filters: Filters | None = None) -> list[int]:
    query = SearchQuery(collection, vector=vector, k=k, candidates=k, mode="dense", filters=filters or Filters())
    return [i for i, _ in store.dense_search(query)]


@pytest.fixture
def big(tmp_path: Path, embedder, real_vectors: np.ndarray) -> tuple[EmbeddedStore, Collection, dict[str, list[int]]]:
    """A store past the threshold, saved: 40 documents, 800 real vectors, IVF."""
    store = ivf_store(tmp_path / "data", embedder)
    collection = store.ensure_collection("default", embedder)
    docs = fill(store, collection, real_vectors, 40)
    store.flush(collection)
    assert store.vectors(collection).ivf
    return store, collection, docs


# -- the switch ---------------------------------------------------------------------------------------


def test_the_index_switches_to_ivf_when_a_save_finds_the_collection_past_the_threshold(
    tmp_path: Path, embedder, real_vectors: np.ndarray,
) -> None:
    store = ivf_store(tmp_path / "data", embedder)
    collection = store.ensure_collection("default", embedder)
    fill(store, collection, real_vectors, 10)  # 200 chunks: below
    store.flush(collection)
    assert store.vectors(collection).params.kind == "flat"
    assert VectorIndex.read_header(store.vector_path(collection))["index"]["kind"] == "flat"

    for d in range(10, 16):  # 320: past it, but ingestion alone never retrains
        put(store, collection, PER_DOCUMENT, real_vectors[d * PER_DOCUMENT :], f"doc{d}")
    assert store.vectors(collection).params.kind == "flat"
    store.flush(collection)

    params = store.vectors(collection).params
    assert (params.kind, params.quantiser, params.trained_on, params.chosen) == ("ivf", "sq8", 320, "auto")
    assert params.nlist == vectors_module.nlist_for(320) and 1 <= params.nprobe <= params.nlist
    assert params.recall >= 0.95
    assert VectorIndex.read_header(store.vector_path(collection))["index"] == params.as_dict()
    assert store.check(collection).ok


def test_growing_past_the_threshold_retrains_once_not_per_document(
    big, real_vectors: np.ndarray, monkeypatch,
) -> None:
    store, collection, _ = big
    trained = store.vectors(collection)
    builds: list[int] = []
    original = VectorIndex._build_ivf.__func__
    monkeypatch.setattr(VectorIndex, "_build_ivf", classmethod(lambda cls, *a: builds.append(1) or original(cls, *a)))
    for d in range(40, 50):
        put(store, collection, PER_DOCUMENT, real_vectors[d * PER_DOCUMENT :], f"doc{d}")
        store.flush(collection)
    assert builds == [] and store.vectors(collection) is trained and trained.ntotal == 1000
    assert trained.params.trained_on == 800


def test_an_ivf_collection_that_shrinks_below_half_the_threshold_goes_back_to_flat(big) -> None:
    store, collection, docs = big
    for source in list(docs)[:35]:  # 100 chunks left
        store.delete_document(collection, store.find_document(collection, source).id)
    assert store.vectors(collection).params.kind == "flat"
    assert store.check(collection).ok


# -- deletes and replaces -------------------------------------------------------------------------


def test_deleted_chunks_are_never_returned_and_replaced_documents_new_chunks_are_found(
    big, real_vectors: np.ndarray,
) -> None:
    store, collection, docs = big
    deleted = docs["doc3"]
    store.delete_document(collection, store.find_document(collection, "doc3").id)
    replaced_old = docs["doc7"]
    fresh = real_vectors[2000:2000 + PER_DOCUMENT]
    new_ids = put(store, collection, PER_DOCUMENT, fresh, "doc7")  # same source: a replacement
    store.flush(collection)
    assert store.vectors(collection).ivf

    for vector in real_vectors[3 * PER_DOCUMENT : 4 * PER_DOCUMENT]:  # the deleted chunks' own vectors
        assert not set(dense(store, collection, vector, k=50)) & set(deleted)
    for chunk_id, vector in zip(new_ids, fresh):
        found = dense(store, collection, vector)
        assert found[0] == chunk_id
        assert not set(found) & set(replaced_old)
    assert store.check(collection).ok


def test_a_filtered_search_on_ivf_returns_only_and_all_the_allowed_nearest(big, real_vectors: np.ndarray) -> None:
    store, collection, docs = big
    store.repair(collection, IndexChoice("ivf", nprobe=1))  # one list unfiltered: the filter must widen it
    allowed_doc = store.find_document(collection, "doc11")
    found = dense(store, collection, real_vectors[0], k=PER_DOCUMENT, filters=Filters(document_ids=[allowed_doc.id]))
    assert sorted(found) == sorted(docs["doc11"])  # a filter letting 20 of 800 through still finds all 20


def test_dense_scores_on_ivf_are_exact_cosines(big, real_vectors: np.ndarray) -> None:
    store, collection, docs = big
    query = SearchQuery(collection, vector=real_vectors[5], k=10, candidates=10, mode="dense")
    ids, matrix = store.catalog.embeddings([i for i, _ in store.dense_search(query)])
    exact = dict(zip(ids.tolist(), (matrix @ real_vectors[5]).tolist()))
    for chunk_id, score in store.dense_search(query):
        assert score == pytest.approx(exact[chunk_id], abs=1e-6)


# -- check ----------------------------------------------------------------------------------------


def plant(store: EmbeddedStore, collection: Collection, change) -> None:
    """Load the saved index, change it, save it back with the same sequence (a damaged file, not a stale one)."""
    path = store.vector_path(collection)
    index = VectorIndex.load(path)
    change(index)
    index.save(path)


def test_check_is_ok_on_an_ivf_index_and_reports_its_parameters(big) -> None:
    store, collection, _ = big
    report = store.check(collection)
    assert report.ok and report.vectors == report.chunks == 800
    assert report.index == store.vectors(collection).params.as_dict()


def test_check_on_ivf_names_a_missing_vector(big) -> None:
    store, collection, docs = big
    victim = docs["doc2"][4]
    plant(store, collection, lambda index: index.remove([victim]))
    report = store.check(collection)
    assert report.missing_vectors == [victim] and not report.ok


def test_check_on_ivf_names_an_orphan_vector(big, real_vectors: np.ndarray) -> None:
    store, collection, _ = big
    plant(store, collection, lambda index: index.add([999_999], real_vectors[:1]))
    assert store.check(collection).orphan_vectors == [999_999]


def test_check_on_ivf_names_a_wrong_vector_even_one_close_to_the_stored_one(big, real_vectors: np.ndarray) -> None:
    store, collection, docs = big
    victim, other = docs["doc5"][0], docs["doc9"][0]
    _, stored = store.catalog.embeddings([victim])
    nudged = stored[0].copy()
    nudged[0] += 0.02  # a few quantiser steps: as close as a quantised index can tell
    far = real_vectors[9 * PER_DOCUMENT]
    plant(store, collection, lambda index: (index.add([victim], nudged[None]), index.add([other], -far[None])))
    report = store.check(collection)
    assert report.wrong_vectors == sorted([victim, other])
    assert not report.missing_vectors and not report.orphan_vectors and not report.ok
    store.repair(collection)
    assert store.check(collection).ok


def test_check_on_a_flat_index_names_a_wrong_vector_too(tmp_path: Path, embedder, real_vectors: np.ndarray) -> None:
    store = ivf_store(tmp_path / "data", embedder)
    collection = store.ensure_collection("default", embedder)
    docs = fill(store, collection, real_vectors, 3)
    store.flush(collection)
    victim = docs["doc1"][3]
    _, stored = store.catalog.embeddings([victim])
    plant(store, collection, lambda index: index.add([victim], (stored[0] + np.float32(1e-6))[None]))
    assert store.check(collection).wrong_vectors == [victim]


# -- recall on real embeddings --------------------------------------------------------------------


def recall_at_10(index: VectorIndex, exact: VectorIndex, queries: np.ndarray) -> float:
    hits = 0
    for q in queries:
        truth = {i for i, _ in exact.search(q, 10)}
        hits += len(truth & {i for i, _ in index.search(q, 10)})
    return hits / (10 * len(queries))


@pytest.mark.parametrize("quantiser", ["sq8", "fp16"])
def test_recall_at_10_against_exact_on_real_embeddings_reaches_the_target(
    tmp_path: Path, embedder, real_vectors: np.ndarray, real_questions: np.ndarray, quantiser: str,
) -> None:
    store = ivf_store(tmp_path / "data", embedder, ivf_quantiser=quantiser)
    collection = store.ensure_collection("default", embedder)
    fill(store, collection, real_vectors, len(real_vectors) // PER_DOCUMENT)
    store.flush(collection)
    index = store.vectors(collection)
    assert index.ivf and index.params.quantiser == quantiser and index.params.nlist == vectors_module.nlist_for(3000)
    exact = VectorIndex(index.dim)
    exact.add(*store.catalog.embeddings(collection_id=collection.id))
    measured = recall_at_10(index, exact, real_questions)  # questions never stored: held out
    assert measured >= 0.95, (measured, index.params)
    assert index.params.nprobe < index.params.nlist  # not a disguised exhaustive scan
    # the store's re-scored ranking is at least as good as the raw index's
    store_hits = sum(len({i for i, _ in exact.search(q, 10)} & set(dense(store, collection, q)))
                     for q in real_questions) / (10 * len(real_questions))
    assert store_hits >= measured - 0.005


# -- persistence ----------------------------------------------------------------------------------


def test_a_restart_loads_the_recorded_ivf_without_training(big, embedder, real_vectors: np.ndarray,
                                                           monkeypatch) -> None:
    store, collection, _ = big
    before = store.vectors(collection).params
    queries = real_vectors[2000:2050]
    expected = [dense(store, collection, q) for q in queries]

    def no_training(*args, **kwargs):
        raise AssertionError("a restart trained the index again")

    monkeypatch.setattr(VectorIndex, "_build_ivf", classmethod(no_training))
    monkeypatch.setattr(faiss.IndexIVFScalarQuantizer, "train", no_training)
    reopened = ivf_store(store.data_dir, embedder)
    assert reopened.vectors(collection).params == before
    assert [dense(reopened, collection, q) for q in queries] == expected
    assert reopened.check(collection).ok


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_a_mapped_index_searches_like_a_loaded_one_and_changes_load_it(
    tmp_path: Path, embedder, real_vectors: np.ndarray, kind: str,
) -> None:
    store = ivf_store(tmp_path / "data", embedder, ivf_threshold=300 if kind == "ivf" else 10**6)
    collection = store.ensure_collection("default", embedder)
    fill(store, collection, real_vectors, 20)
    store.flush(collection)
    queries = real_vectors[2000:2030]
    expected = [dense(store, collection, q) for q in queries]

    mapped = ivf_store(store.data_dir, embedder, ivf_threshold=300 if kind == "ivf" else 10**6, mmap=True)
    index = mapped.vectors(collection)
    assert index.mapped and index.params.kind == kind
    if kind == "ivf":  # FAISS reads the lists from the mapped file, not from a copy
        assert isinstance(faiss.downcast_InvertedLists(index._index.invlists), faiss.OnDiskInvertedLists)
    assert [dense(mapped, collection, q) for q in queries] == expected
    assert mapped.check(collection).ok
    with pytest.raises(Exception, match="read-only"):
        index.remove([1])
    mapped.flush(collection)  # a mapped index is its file: nothing to write

    new_ids = put(mapped, collection, 5, real_vectors[2500:], "late")  # a change: loaded into memory first
    assert not mapped.vectors(collection).mapped
    assert dense(mapped, collection, real_vectors[2500])[0] == new_ids[0]
    mapped.flush(collection)
    assert mapped.check(collection).ok


def test_a_vector_file_in_the_format_before_the_trailer_still_loads(tmp_path: Path, real_vectors: np.ndarray) -> None:
    index = VectorIndex(real_vectors.shape[1])
    index.add(range(1, 101), real_vectors[:100])
    header = json.dumps({"dim": index.dim, "seq": 42}).encode()
    path = tmp_path / "old.faiss"
    path.write_bytes(b"DOCQAVEC" + struct.pack("<I", len(header)) + header
                     + faiss.serialize_index(index._index).tobytes())
    for mmap in (False, True):
        old = VectorIndex.load(path, mmap=mmap)
        assert (old.seq, old.params, old.mapped) == (42, IndexParams(), False)
        assert np.array_equal(old.ids(), np.arange(1, 101))
        assert old.search(real_vectors[7], 1)[0][0] == 8


# -- reindex --index ------------------------------------------------------------------------------


def test_repair_builds_the_index_asked_for_and_keeps_it_pinned(big) -> None:
    store, collection, _ = big
    store.repair(collection, IndexChoice("flat"))
    assert store.check(collection).index == {"kind": "flat", "chosen": "flat"}
    store.flush(collection)  # past the threshold, but pinned: stays flat
    assert store.vectors(collection).params.kind == "flat"

    store.repair(collection, IndexChoice("ivf", nlist=16, nprobe=3, quantiser="pq"))
    params = store.vectors(collection).params
    assert (params.kind, params.nlist, params.nprobe, params.quantiser, params.chosen) == ("ivf", 16, 3, "pq", "ivf")
    assert 0 < params.recall < 1 and store.check(collection).ok  # PQ codes re-encode exactly too

    store.repair(collection)  # no choice: as recorded (pinned IVF, PQ), parameters chosen afresh
    assert store.vectors(collection).params.quantiser == "pq"
    store.repair(collection, IndexChoice("auto"))
    assert store.vectors(collection).params.chosen == "auto"
    assert store.vectors(collection).params.quantiser == "sq8"


def test_repair_rejects_choices_it_cannot_honour(big) -> None:
    store, collection, _ = big
    with pytest.raises(InvalidInput, match="--index must be auto, flat or ivf"):
        store.repair(collection, IndexChoice("hnsw"))
    with pytest.raises(InvalidInput, match="go with --index ivf"):
        store.repair(collection, IndexChoice("flat", nlist=4))
    with pytest.raises(InvalidInput, match="quantiser must be one of"):
        store.repair(collection, IndexChoice("ivf", quantiser="sq3"))
    assert store.check(collection).ok
