"""A data directory for the MCP tests: two collections ingested with the session's model, and API keys.

`alpha` holds the engineering handbook and the FAQ; `beta` the Portuguese holiday policy and a note whose secret
no caller limited to `alpha` may ever see. The store is closed afterwards, so a `docqa` subprocess can open it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from indexes.embedders import EmbedderSpec
from indexes.embedded import EmbeddedStore
from ingest.pipeline import IngestPipeline, SourceFile
from service.keys import KeyStore

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SECRET = "BETA-4417"
CONTENTS = {"alpha": ["handbook.md", "faq.html"], "beta": ["politica-de-ferias.md", "vault.md"]}


@dataclass
class McpData:
    """The data directory, each collection's document ids by source, and each caller's key (by name)."""

    data_dir: Path
    documents: dict[str, dict[str, int]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)


def build(root: Path, embedder, keys: dict[str, tuple[str, list[str] | None]] | None = None) -> McpData:
    """Ingest CONTENTS under `root` and create `keys` (name → (role, collections or None for all))."""
    docs = root / "docs"
    docs.mkdir(parents=True)
    for name in ("handbook.md", "faq.html", "politica-de-ferias.md"):
        shutil.copy(SAMPLES / name, docs / name)
    (docs / "vault.md").write_text(f"# Vault\n\nThe vault combination is {SECRET}. Change it every quarter.\n")
    made = McpData(root / "data")
    store = EmbeddedStore(made.data_dir, EmbedderSpec())
    store.embedders.add(EmbedderSpec(), embedder)
    try:
        for name, sources in CONTENTS.items():
            collection = store.ensure_collection(name, embedder)
            report = IngestPipeline(store, collection, workers=0).ingest([SourceFile(docs / s, s, {}) for s in sources])
            assert [r.status for r in report.results] == ["ingested"] * len(sources), report.results
            made.documents[name] = {r.source: r.document_id for r in report.results}
        key_store = KeyStore(store.records.keys)
        for caller, (role, scope) in (keys or {}).items():
            made.keys[caller] = key_store.create(role, scope, caller)[1]
        store.flush()
    finally:
        store.close()
    return made
