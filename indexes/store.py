"""The store boundary: the only way anything outside `indexes/` touches persistence.

A `Store` holds collections, documents with their chunks and vectors, and the service's own records
(conversations, API keys, jobs). It ranks candidates (dense by vector, lexical by BM25); fusion, sentence
scoring, feedback and answering stay above it and never know which backend they run on. Two backends ship:
`EmbeddedStore` (SQLite + FTS5 + FAISS under a data directory, `indexes/embedded.py`) and `PostgresStore`
(PostgreSQL + pgvector, `indexes/postgres.py`); `indexes/backends.py` opens one by URL. The protocol is a
handful of small ones, each a few methods deep, so a backend's contract can be read (and tested:
`tests/test_store_contract.py`) one concern at a time.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

import numpy as np

from indexes.embedders import Embedder, EmbedderIdentity, EmbedderSpec, build_embedder, choose_spec, is_auto
from indexes.language import documents_language
from indexes.errors import Conflict, EmbedderMismatch, NotFound
from indexes.filters import Filters
from indexes.locators import locator_of
from indexes.types import ChunkInput, Collection, DocumentFields, DocumentRecord

if TYPE_CHECKING:
    from indexes.records import Records

Ranking = list[tuple[int, float]]


@dataclass(frozen=True)
class SearchQuery:
    """What crosses the boundary for one search: the question, its vector, how many, and which documents."""

    collection: Collection
    text: str = ""
    vector: np.ndarray | None = None
    k: int = 5
    candidates: int = 50
    mode: str = "hybrid"
    filters: Filters = field(default_factory=Filters)

    @property
    def depth(self) -> int:
        """How many candidates each ranking returns."""
        return max(self.k, self.candidates)


@dataclass(frozen=True)
class ChunkRecord:
    """A stored chunk with the document fields a hit shows."""

    id: int
    document_id: int
    ordinal: int
    text: str
    start: int
    end: int
    page_start: int | None
    page_end: int | None
    heading_path: tuple[str, ...]
    title: str | None
    source: str
    metadata: dict[str, Any]
    locator: dict[str, Any] | None = None
    ocr: bool = False


_CHUNK_KEYS = ("id", "ordinal", "text", "start", "end", "page_start", "page_end")


def chunk_dict(row: Sequence[Any], locator: dict[str, Any] | None, ocr: bool) -> dict[str, Any]:
    """A document's chunk as `document_chunks` lists it, from its id, ordinal, text, start, end, pages and
    heading path (JSON) in that order; a chunk stored before locators gets its page's."""
    out = dict(zip(_CHUNK_KEYS, row[:7]))
    return {**out, "heading_path": json.loads(row[7]), "locator": locator_of(locator, out["page_start"]), "ocr": ocr}


@dataclass
class StoredDocument:
    """Everything a document is in a store, enough to put it into another without re-parsing or re-embedding."""

    fields: DocumentFields
    status: str
    error: str | None
    chunks: list[ChunkInput]
    embeddings: np.ndarray
    sentence_vectors: list[np.ndarray | None]


@dataclass(frozen=True)
class IndexChoice:
    """What `repair` rebuilds the vector index as (`docqa reindex --index`): `auto` (by size), `flat` or `ivf`,
    with optional IVF parameters (None: chosen). Only the embedded store has a choice: PostgreSQL's is HNSW."""

    kind: str = "auto"
    nlist: int | None = None
    nprobe: int | None = None
    quantiser: str | None = None


@dataclass
class CheckReport:
    """What `check` found: every list empty means rows, lexical index and vectors agree exactly."""

    collection: str
    chunks: int
    vectors: int
    lexical_rows: int
    missing_vectors: list[int] = field(default_factory=list)
    orphan_vectors: list[int] = field(default_factory=list)
    missing_lexical: list[int] = field(default_factory=list)
    orphan_lexical: list[int] = field(default_factory=list)
    bad_dimensions: list[int] = field(default_factory=list)
    wrong_vectors: list[int] = field(default_factory=list)  # held vector (or code) differs from the stored one
    missing_lexical_index: list[int] = field(default_factory=list)  # FTS rows a tantivy index lacks
    orphan_lexical_index: list[int] = field(default_factory=list)  # and ids it holds without one
    problems: list[str] = field(default_factory=list)
    index: dict[str, Any] = field(default_factory=dict)  # the vector index's kind and parameters

    @property
    def ok(self) -> bool:
        """True when nothing disagrees."""
        return not (
            self.missing_vectors or self.orphan_vectors or self.missing_lexical or self.orphan_lexical
            or self.bad_dimensions or self.wrong_vectors or self.missing_lexical_index or self.orphan_lexical_index
            or self.problems
        )


class CollectionStore(Protocol):
    """Named sets of documents, each embedded by one recorded embedder."""

    def create_collection(self, name: str, embedder: dict[str, Any], description: str = "") -> Collection: ...
    def find_collection(self, name: str) -> Collection | None: ...
    def list_collections(self) -> list[Collection]: ...
    def delete_collection(self, name: str) -> None: ...
    def set_embedder(self, collection: Collection, embedder: dict[str, Any]) -> Collection: ...
    def counts(self, collection: Collection) -> dict[str, int]: ...


class DocumentStore(Protocol):
    """Documents: each put (with its chunks and vectors) or deleted in one transaction, all or nothing."""

    def put_document(
        self, collection: Collection, fields: DocumentFields, chunks: Sequence[ChunkInput], embeddings: np.ndarray,
        sentence_vectors: Sequence[np.ndarray | None] | None = None,
    ) -> tuple[int, list[int]]: ...
    def record_failure(self, collection: Collection, fields: DocumentFields, error: str) -> int: ...
    def delete_document(self, collection: Collection, document_id: int) -> None: ...
    def find_document(self, collection: Collection, source: str) -> DocumentRecord | None: ...
    def get_document(self, document_id: int, collection: Collection | None = None) -> DocumentRecord: ...
    def list_documents(self, collection: Collection, status: str | None = None) -> list[DocumentRecord]: ...
    def document_text(self, document_id: int) -> str: ...
    def document_chunks(self, document_id: int) -> list[dict[str, Any]]: ...
    def export_document(self, document_id: int) -> StoredDocument: ...


class ChunkStore(Protocol):
    """Chunk rows and their stored vectors, by id; ids not found are left out, never half-returned."""

    def chunks(self, chunk_ids: Sequence[int]) -> dict[int, ChunkRecord]: ...
    def embeddings(self, chunk_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]: ...
    def chunk_vectors(self, chunk_ids: Sequence[int], dim: int) -> dict[int, tuple[np.ndarray, np.ndarray | None]]: ...


class Retriever(Protocol):
    """Ranked candidates of one collection, best first, within the query's filters."""

    def dense_search(self, query: SearchQuery) -> Ranking: ...
    def lexical_search(self, query: SearchQuery) -> Ranking: ...


class Consistency(Protocol):
    """What a backend can verify and rebuild of itself, like `git fsck`."""

    def last_seq(self, collection: Collection) -> int: ...
    def check(self, collection: Collection) -> CheckReport: ...
    def repair(self, collection: Collection, index: IndexChoice | None = None) -> None: ...


class Store(CollectionStore, DocumentStore, ChunkStore, Retriever, Consistency, Protocol):
    """The whole boundary, plus the embedders that built the collections and the service's records."""

    url: str
    records: "Records"

    def get_collection(self, name: str) -> Collection: ...
    def ensure_collection(self, name: str, embedder: Embedder | None = None, description: str = "",
                          sample: Callable[[], Sequence[str]] | None = None) -> Collection: ...
    def choose_embedder(self, collection: Collection, sample: Callable[[], Sequence[str]]) -> Collection: ...
    def embedder(self, collection: Collection) -> Embedder: ...
    def embedder_for_spec(self, spec: EmbedderSpec) -> Embedder: ...
    def warm_up(self, collection: Collection) -> None: ...
    def flush(self, collection: Collection | None = None) -> None: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...


class Embedders:
    """One shared embedder per (backend, model, precision), so a process loads each model once."""

    def __init__(self, default: EmbedderSpec | None = None, wrap: Callable[[Embedder], Embedder] | None = None) -> None:
        self.default = default or EmbedderSpec()
        self._wrap = wrap
        self._built: dict[tuple[str, str, str], Embedder] = {}
        self._lock = threading.Lock()

    def for_spec(self, spec: EmbedderSpec) -> Embedder:
        """The embedder for a spec, built on first use; `auto` with no documents to go by is the English choice."""
        spec = choose_spec(spec)
        key = (spec.backend, spec.model, spec.precision)
        with self._lock:
            if key not in self._built:
                built = build_embedder(spec)
                self._built[key] = self._wrap(built) if self._wrap else built
            return self._built[key]

    def add(self, spec: EmbedderSpec, embedder: Embedder) -> None:
        """Use an already loaded embedder for this spec."""
        with self._lock:
            self._built[(spec.backend, spec.model, spec.precision)] = embedder


class StoreBase:
    """What every backend shares: collections' embedders and `ensure_collection`, on top of its own methods."""

    embedders: Embedders

    def find_collection(self, name: str) -> Collection | None:
        raise NotImplementedError

    def create_collection(self, name: str, embedder: dict[str, Any], description: str = "") -> Collection:
        raise NotImplementedError

    def set_embedder(self, collection: Collection, embedder: dict[str, Any]) -> Collection:
        raise NotImplementedError

    def counts(self, collection: Collection) -> dict[str, int]:
        raise NotImplementedError

    def get_collection(self, name: str) -> Collection:
        """The collection called `name`; NotFound if there is none."""
        found = self.find_collection(name)
        if found is None:
            raise NotFound(f"collection {name!r} not found")
        return found

    def embedder_for_spec(self, spec: EmbedderSpec) -> Embedder:
        """The shared embedder for a spec."""
        return self.embedders.for_spec(spec)

    def embedder(self, collection: Collection) -> Embedder:
        """The embedder that built this collection's vectors, so queries can never use another."""
        identity = collection.embedder
        default = self.embedders.default
        spec = EmbedderSpec.from_identity(identity, device=default.device, batch_size=default.batch_size)
        embedder = self.embedders.for_spec(spec)
        # Same name is not same model (a path re-pointed, a new revision): compare what was recorded.
        check_embedder(collection, embedder.identity)
        return embedder

    def ensure_collection(self, name: str, embedder: Embedder | None = None, description: str = "",
                          sample: Callable[[], Sequence[str]] | None = None) -> Collection:
        """Open a collection, creating it if needed; EmbedderMismatch if it was built by another embedder.
        Without an embedder, the default builds a new collection; when the default is `auto`, by the language of
        `sample()` (texts of the documents about to be ingested, asked for only if the collection holds no chunks
        yet: new, or created empty), and a collection with chunks keeps whatever embedder it recorded."""
        existing = self.find_collection(name)
        default = self.embedders.default
        if embedder is None and existing is not None and is_auto(default):
            return self.choose_embedder(existing, sample) if sample is not None else existing
        if embedder is None:
            language = documents_language(sample()) if sample is not None and is_auto(default) else None
            embedder = self.embedders.for_spec(choose_spec(default, language))
        if existing is None:
            try:
                return self.create_collection(name, embedder.identity.as_dict(), description)
            except Conflict:  # another process created it first
                existing = self.get_collection(name)
        check_embedder(existing, embedder.identity)
        return existing

    def choose_embedder(self, collection: Collection, sample: Callable[[], Sequence[str]]) -> Collection:
        """With the default `auto`, a collection that holds no chunks yet (created empty: by an API call, or as
        `docqa serve`'s default collection) takes the embedder chosen by the language of `sample()`, the
        documents about to be ingested; otherwise, and once it holds chunks, it keeps the one it recorded."""
        if not is_auto(self.embedders.default) or self.counts(collection)["chunks"]:
            return collection
        chosen = self.embedders.for_spec(choose_spec(self.embedders.default, documents_language(sample())))
        if chosen.identity.mismatches(collection.embedder):
            return self.set_embedder(collection, chosen.identity.as_dict())
        return collection


def check_embedder(collection: Collection, identity: EmbedderIdentity) -> None:
    """Raise EmbedderMismatch naming what differs between the collection's embedder and this one."""
    differing = identity.mismatches(collection.embedder)
    if differing:
        details = ", ".join(f"{k}: {collection.embedder.get(k)!r} vs {getattr(identity, k)!r}" for k in differing)
        raise EmbedderMismatch(
            f"collection {collection.name!r} was built with another embedder ({details});"
            " use the same model or ingest into a new collection"
        )
