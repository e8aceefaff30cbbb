"""Sentence vectors: from each chunk's own forward pass, stored with the chunk, and used to score short
questions by a chunk's best sentence as well as the whole chunk (real model throughout)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from indexes.catalog import Catalog
from indexes.embedders import EmbedderSpec, SentenceTransformerEmbedder, bundled_model_path
from indexes.search import SHORT_QUERY_MAX_WORDS, SearchTuning, Searcher
from indexes.embedded import EmbeddedStore
from indexes.types import ChunkInput
from indexes.sentences import sentence_spans
from ingest.chunking import embed_sentence_spans
from ingest.pipeline import IngestPipeline, SourceFile

OFFICE = (
    "# Office guide\n\nThe cafeteria opens at eight and serves breakfast until ten. Meeting rooms are booked through "
    "the calendar and must be released when a meeting ends early. Printers on each floor need your badge to release "
    "a job. Visitors sign in at reception and wear a visitor sticker. Lost property is kept at reception for a month. "
    "The wifi password changes every Monday. The fire drill happens twice a year and everyone leaves by the nearest "
    "stairs. Bicycles may be parked in the basement cage, which is opened with a key from the security desk on the "
    "ground floor."
)
CYCLING = (
    "# Cycling to work\n\nCycling to work is popular with our staff. The city has safe bike lanes on most streets, and "
    "riders should wear a helmet and use lights after dark. A bicycle is a healthy and cheap way to commute. Electric "
    "bikes can be bought with the yearly wellness allowance."
)
QUESTION = "Is there bicycle parking in the basement?"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("sentences")
    (root / "docs").mkdir()
    (root / "docs" / "office-guide.md").write_text(OFFICE)
    (root / "docs" / "cycling.md").write_text(CYCLING)
    store = EmbeddedStore(root / "data", EmbedderSpec())
    store.embedders.add(EmbedderSpec(), embedder)
    collection = store.ensure_collection("office", embedder)
    files = [SourceFile(p, p.name) for p in sorted((root / "docs").iterdir())]
    assert IngestPipeline(store, collection, workers=0).ingest(files).counts()["ingested"] == 2
    return store, collection


def names(hits) -> list[str]:
    return [Path(h.source).name for h in hits]


def test_passage_vectors_are_unchanged_and_each_span_gets_its_own(embedder) -> None:
    text = "Kublai Khan promoted trade. He protected the Silk Road. The fourth Yuan emperor was Buyantu Khan."
    spans = sentence_spans(text)
    vectors, per_text = embedder.embed_documents_with_spans([text, "One more passage."], [spans, [(0, 3)]])
    assert np.allclose(vectors, embedder.embed_documents([text, "One more passage."]), atol=1e-6)
    assert [m.shape for m in per_text] == [(3, 384), (1, 384)]
    assert np.allclose(np.linalg.norm(per_text[0], axis=1), 1.0, atol=1e-5)
    scores = per_text[0] @ embedder.embed_query("Who was the fourth emperor of the Yuan dynasty?")
    assert int(np.argmax(scores)) == 2  # the sentence that answers, not the passage's first
    # each is close to the sentence embedded on its own, though it keeps its passage's context
    alone = embedder.embed_documents([text[a:b] for a, b in spans])
    assert (np.sum(alone * per_text[0], axis=1) > 0.7).all()


def test_a_model_that_does_not_pool_by_mean_gives_no_span_vectors(embedder) -> None:
    from sentence_transformers import SentenceTransformer, models

    cls_model = SentenceTransformer(modules=[models.Transformer(str(bundled_model_path())), models.Pooling(384, "cls")])
    other = SentenceTransformerEmbedder()
    other._model = cls_model
    vectors, per_text = other.embed_documents_with_spans(["A first sentence. A second one."], [[(0, 17), (18, 31)]])
    assert vectors.shape == (1, 384) and per_text == [None]


def test_sentence_spans_land_on_the_embedded_text_after_the_heading_context() -> None:
    chunk = ChunkInput("First one. Second one.", "Guide > Rules\nFirst one. Second one.", 0, 22)
    assert [chunk.embed_text[a:b] for a, b in embed_sentence_spans(chunk)] == ["First one.", "Second one."]


def test_ingestion_stores_one_float16_vector_per_sentence_of_each_chunk(indexed, embedder) -> None:
    store, collection = indexed
    rows = store.catalog.db.execute("SELECT id, text, embed_text FROM chunks WHERE collection_id = ?", (collection.id,))
    for chunk_id, text, embed_text in rows:
        chunk = ChunkInput(text, embed_text, 0, len(text))
        spans = embed_sentence_spans(chunk)
        vector, sentences = store.catalog.chunk_and_sentence_vectors([chunk_id], 384)[chunk_id]
        assert sentences is not None and sentences.dtype == np.float16 and len(sentences) == len(spans) >= 3
        _, fresh = embedder.embed_documents_with_spans([embed_text], [spans])
        assert np.abs(sentences.astype(np.float32) - fresh[0]).max() < 2e-3


def test_a_sentence_buried_in_a_long_chunk_lifts_it_for_a_short_question(indexed) -> None:
    store, collection = indexed
    whole_chunks = Searcher(store, SearchTuning(sentence_weight=0.0)).search(collection, QUESTION, mode="dense", k=2)
    by_sentence = Searcher(store).search(collection, QUESTION, mode="dense", k=2)
    assert names(whole_chunks) == ["cycling.md", "office-guide.md"]  # the chunk about bikes in general
    assert names(by_sentence) == ["office-guide.md", "cycling.md"]  # the chunk whose sentence answers
    assert names(Searcher(store).search(collection, QUESTION, k=1)) == ["office-guide.md"]


def test_a_long_query_and_a_question_in_another_language_compare_whole_chunks_only(indexed) -> None:
    store, collection = indexed
    long_query = " ".join([QUESTION] * (SHORT_QUERY_MAX_WORDS // 7 + 1))
    portuguese = "Existe estacionamento para bicicletas no subsolo do escritório?"
    for query in (long_query, portuguese):
        plain = Searcher(store, SearchTuning(sentence_weight=0.0)).search(collection, query, mode="dense", k=2)
        default = Searcher(store).search(collection, query, mode="dense", k=2)
        assert [(h.chunk_id, h.score) for h in default] == [(h.chunk_id, h.score) for h in plain]


def test_chunks_from_before_sentence_vectors_score_by_the_chunk_alone(tmp_path, embedder) -> None:
    store = EmbeddedStore(tmp_path / "data", EmbedderSpec())
    store.embedders.add(EmbedderSpec(), embedder)
    collection = store.ensure_collection("old", embedder)
    (tmp_path / "office-guide.md").write_text(OFFICE)
    IngestPipeline(store, collection, workers=0).ingest([SourceFile(tmp_path / "office-guide.md", "office-guide.md")])
    store.catalog.close()
    db = sqlite3.connect(store.catalog.path)  # as schema 2 wrote it: no sentence vectors column
    db.execute("ALTER TABLE chunks DROP COLUMN sentence_vectors")
    db.commit()
    db.close()
    reopened = EmbeddedStore(tmp_path / "data", EmbedderSpec())
    reopened.embedders.add(EmbedderSpec(), embedder)
    columns = {r[1] for r in reopened.catalog.db.execute("PRAGMA table_info(chunks)")}
    assert "sentence_vectors" in columns
    old = reopened.catalog.get_collection("old")
    plain = Searcher(reopened, SearchTuning(sentence_weight=0.0)).search(old, QUESTION, k=1)
    default = Searcher(reopened).search(old, QUESTION, k=1)
    assert names(default) == ["office-guide.md"] and default[0].score == plain[0].score


def test_the_catalog_refuses_a_sentence_vector_list_of_the_wrong_length(tmp_path) -> None:
    from indexes.types import DocumentFields

    catalog = Catalog(tmp_path / "c.sqlite3")
    cid = catalog.create_collection("c", {"dim": 4}).id
    chunk = ChunkInput("a", "a", 0, 1)
    with pytest.raises(ValueError, match="1 chunks but 2 sentence vector sets"):
        catalog.put_document(cid, DocumentFields("a.md", "sha", 1), [chunk], np.ones((1, 4)), [None, None])
