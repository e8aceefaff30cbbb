"""Plugins: a third-party package, written here into a temp dir with its dist-info, adds a parser and a generator
that a real `docqa serve` uses through the HTTP API; `docqa plugins` lists it beside docqa's own backends.
Also each generator's settings section, read from the environment by the backend's own model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from server import ENTRY, DocqaServer, ask, wait_for_job
from service.evidence import EvidenceScorer
from service.generators.registry import GeneratorRegistry
from service.settings import GeneratorConfig, Settings

ROOT = Path(__file__).resolve().parents[1]

PLUGIN_MODULE = '''\
"""docqa-note: `.note` files (a `title:` line, then `- ` items) and a generator that always says one sentence."""

from pydantic import BaseModel

from ingest.parsers.base import DocumentBuilder
from service.generators.base import GeneratorPlugin


class NoteParser:
    suffixes = (".note",)

    def parse(self, data, name):
        builder, title = DocumentBuilder(), None
        for line in data.decode("utf-8").splitlines():
            if line.startswith("title:"):
                title = line.removeprefix("title:").strip()
            elif line.startswith("- "):
                builder.add(line[2:], heading_path=[title] if title else [])
        return builder.build(title=title)


class FixedSettings(BaseModel):
    sentence: str = "No sentence was configured [1]."


class FixedGenerator:
    name = "fixed"

    def __init__(self, sentence):
        self.sentence = sentence

    def generate(self, question, passages):
        yield self.sentence


GENERATOR = GeneratorPlugin(FixedSettings, lambda settings, scorer: FixedGenerator(settings.sentence))


class ShortestFirst:
    name = "shortest-first"

    def rerank(self, query, texts):
        return [-float(len(t)) for t in texts]


def build_reranker(config):
    return ShortestFirst()
'''

NOTE = b"""title: Kitchen rota
- The office kettle is descaled every Friday morning by the facilities team.
- The dishwasher is emptied by whoever arrives first on Monday.
"""
SENTENCE = "The facilities team descales the kettle on Friday mornings [1]."


def write_plugin(site: Path, entry_points: str) -> Path:
    """A package `docqa_note` and its `docqa_note-0.1.dist-info` (METADATA, entry_points.txt) under `site`."""
    (site / "docqa_note").mkdir(parents=True)
    (site / "docqa_note" / "__init__.py").write_text(PLUGIN_MODULE)
    info = site / "docqa_note-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: docqa-note\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    return site


def with_site(site: Path) -> dict[str, str]:
    """PYTHONPATH with the plugin's dir before docqa's source, as if the plugin were installed."""
    return {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


def docqa(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`docqa ARGS...` in a fresh interpreter with `env` added (no DOCQA_* settings inherited)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DOCQA_")}
    return subprocess.run([sys.executable, "-c", ENTRY, *args], env={**base, **env}, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def note_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_plugin(tmp_path_factory.mktemp("site"), """\
[docqa.generators]
fixed = docqa_note:GENERATOR

[docqa.parsers]
note = docqa_note:NoteParser

[docqa.rerankers]
shortest = docqa_note:build_reranker
""")


def test_docqa_plugins_lists_the_third_party_plugins_and_the_built_ins(note_plugin):
    result = docqa("plugins", "--json", env=with_site(note_plugin))
    assert result.returncode == 0, result.stderr
    rows = {(r["group"], r["name"]): r for r in json.loads(result.stdout)["plugins"]}
    assert rows["docqa.generators", "fixed"] == {"group": "docqa.generators", "name": "fixed",
                                                  "distribution": "docqa-note", "object": "docqa_note:GENERATOR",
                                                  "error": None}
    assert rows["docqa.parsers", "note"]["distribution"] == "docqa-note"
    assert rows["docqa.parsers", "note"]["object"] == "docqa_note:NoteParser"
    built_in = {key for key, r in rows.items() if r["distribution"] == "docqa"}
    assert {("docqa.stores", "sqlite"), ("docqa.embedders", "sentence-transformers"), ("docqa.parsers", "pdf"),
            ("docqa.generators", "extractive"), ("docqa.generators", "openai"), ("docqa.rerankers", "cross-encoder"),
            ("docqa.rerankers", "http")} <= built_in
    assert rows["docqa.rerankers", "shortest"]["distribution"] == "docqa-note"


def test_a_served_plugin_parses_uploads_and_answers_with_its_own_settings(note_plugin, tmp_path):
    env = {**with_site(note_plugin), "DOCQA_GENERATOR__ENABLED": '["extractive", "fixed"]',
           "DOCQA_GENERATOR__FIXED__SENTENCE": SENTENCE,
           "DOCQA_RERANKER__BACKEND": "shortest", "DOCQA_RERANKER__MODEL": "shortest-first"}
    with DocqaServer(tmp_path, env=env) as server, httpx.Client(base_url=server.base_url, timeout=60) as client:
        response = client.post("/v1/collections/default/documents", files={"files": ("kitchen.note", NOTE)})
        assert response.status_code == 202, response.text
        job = wait_for_job(client, response.json()["id"])
        assert job["state"] == "succeeded", job

        body = ask(client, "When is the office kettle descaled?", generator="fixed")
        assert body["generator"] == "fixed"
        assert body["abstained"] is False
        assert body["answer"] == SENTENCE
        first = body["citations"][0]
        assert first["source"] == "kitchen.note" and first["cited"] is True
        # The note parser's reading, not raw text: the title line became the title and heading, items their text.
        assert first["title"] == "Kitchen rota" and first["heading_path"] == ["Kitchen rota"]
        assert "The office kettle is descaled every Friday morning" in first["text"] and "- The" not in first["text"]

        extractive = ask(client, "When is the office kettle descaled?")
        assert extractive["generator"] == "extractive" and extractive["answer"] != SENTENCE

        # the plugin's re-ranker orders the search: shortest passage first, its score beside the retrievers'
        hits = client.post("/v1/search", json={"query": "office kettle dishwasher", "top_k": 2}).json()["hits"]
        assert [h["scores"]["rerank"] for h in hits] == [-float(len(h["text"])) for h in hits]
        assert [len(h["text"]) for h in hits] == sorted(len(h["text"]) for h in hits)


def test_without_the_plugin_a_note_upload_is_refused(tmp_path):
    with DocqaServer(tmp_path) as server, httpx.Client(base_url=server.base_url, timeout=60) as client:
        response = client.post("/v1/collections/default/documents", files={"files": ("kitchen.note", NOTE)})
        assert response.status_code == 415, response.text
        assert ".note" in response.json()["detail"]
        refused = client.post("/v1/ask", json={"question": "When is the kettle descaled?", "generator": "fixed"})
        assert refused.status_code == 422, refused.text


def test_a_plugin_that_does_not_load_is_named_by_docqa_plugins(tmp_path):
    site = write_plugin(tmp_path / "site", "[docqa.parsers]\ngone = docqa_gone:Parser\n")
    result = docqa("plugins", "--json", env=with_site(site))
    assert result.returncode == 1
    rows = {r["name"]: r for r in json.loads(result.stdout)["plugins"]}
    assert "docqa-note" in rows["gone"]["error"] and "ModuleNotFoundError" in rows["gone"]["error"]
    assert "docqa_gone" in rows["gone"]["error"]
    assert rows["pdf"]["error"] is None


# --- each backend's settings section --------------------------------------------------------------------


def test_a_backends_section_is_read_from_its_environment_variables(monkeypatch):
    monkeypatch.setenv("DOCQA_GENERATOR__OPENAI__BASE_URL", "http://llm.internal:8080/v1")
    monkeypatch.setenv("DOCQA_GENERATOR__OPENAI__TIMEOUT", "7.5")
    monkeypatch.setenv("DOCQA_GENERATOR__LLAMACPP__N_CTX", "2048")
    generator = Settings().generator
    assert generator.section("openai").base_url == "http://llm.internal:8080/v1"
    assert generator.section("openai").timeout == 7.5
    assert generator.section("llamacpp").n_ctx == 2048
    assert generator.section("bedrock").max_tokens == 512  # not given: the model's default


def test_a_bad_section_value_names_the_variable_and_hides_secrets(monkeypatch):
    monkeypatch.setenv("DOCQA_GENERATOR__OPENAI__API_KEY", "sk-42")
    monkeypatch.setenv("DOCQA_GENERATOR__OPENAI__TIMEOUT", "-1")
    with pytest.raises(ValidationError, match="DOCQA_GENERATOR__OPENAI__TIMEOUT: Input should be greater than 0") as e:
        Settings()
    assert "sk-42" not in str(e.value)


def test_a_section_no_installed_generator_reads_is_refused():
    with pytest.raises(ValidationError, match=r"DOCQA_GENERATOR__OPENAIX: no installed generator reads it.*'openai'"):
        GeneratorConfig(openaix={"base_url": "http://x"})


def test_the_extractive_generator_is_built_from_its_section(embedder):
    scorer = EvidenceScorer(embedder)
    default = GeneratorRegistry(GeneratorConfig()).get("extractive", scorer)
    tuned_config = GeneratorConfig(extractive={"max_sentences": 1, "keep_within": 0.2})
    tuned = GeneratorRegistry(tuned_config).get("extractive", scorer)
    assert (default.max_sentences, default.keep_within) == (2, 0.7)
    assert (tuned.max_sentences, tuned.keep_within) == (1, 0.2)
