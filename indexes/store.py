"""An opened data directory: the catalog, one vector index per collection, and the embedders that built them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from indexes.catalog import Catalog
from indexes.embedders import Embedder, EmbedderIdentity, EmbedderSpec, build_embedder
from indexes.errors import EmbedderMismatch, StorageError
from indexes.types import ChunkInput, Collection, DocumentFields
from indexes.vectors import VectorIndex

CATALOG_FILE = "catalog.sqlite3"


@dataclass
class CheckReport:
    """What `check` found: every list empty means catalog, FTS rows and vectors agree exactly."""

    collection: str
    chunks: int
    vectors: int
    fts_rows: int
    missing_vectors: list[int] = field(default_factory=list)
    orphan_vectors: list[int] = field(default_factory=list)
    missing_fts: list[int] = field(default_factory=list)
    orphan_fts: list[int] = field(default_factory=list)
    bad_dimensions: list[int] = field(default_factory=list)
    vector_file_problem: str | None = None

    @property
    def ok(self) -> bool:
        """True when nothing disagrees."""
        return not (
            self.missing_vectors or self.orphan_vectors or self.missing_fts or self.orphan_fts
            or self.bad_dimensions or self.vector_file_problem
        )


class IndexStore:
    """Everything under one data directory; safe to share between threads."""

    def __init__(self, data_dir: Path, embedder_spec: EmbedderSpec | None = None) -> None:
        self.data_dir = Path(data_dir)
        try:
            (self.data_dir / "vectors").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create data directory {self.data_dir}: {exc}") from exc
        self.catalog = Catalog(self.data_dir / CATALOG_FILE)
        self.default_spec = embedder_spec or EmbedderSpec()
        self._vectors: dict[int, VectorIndex] = {}
        self._embedders: dict[tuple[str, str, str], Embedder] = {}
        self._lock = threading.RLock()

    # -- embedders --------------------------------------------------------------------------------

    def embedder_for_spec(self, spec: EmbedderSpec) -> Embedder:
        """One shared embedder per (backend, model, precision): models are loaded once per process."""
        key = (spec.backend, spec.model, spec.precision)
        with self._lock:
            if key not in self._embedders:
                self._embedders[key] = build_embedder(spec)
            return self._embedders[key]

    def embedder(self, collection: Collection) -> Embedder:
        """The embedder that built this collection's vectors, so queries can never use another."""
        identity = collection.embedder
        spec = EmbedderSpec(
            backend=identity["backend"], model=identity["model"], precision=identity.get("precision", "fp32"),
            device=self.default_spec.device, batch_size=self.default_spec.batch_size,
        )
        embedder = self.embedder_for_spec(spec)
        # Same name is not same model (a path re-pointed, a new revision): compare what was recorded.
        self.check_embedder(collection, embedder.identity)
        return embedder

    def ensure_collection(self, name: str, embedder: Embedder | None = None, description: str = "") -> Collection:
        """Open a collection, creating it if needed; EmbedderMismatch if it was built by another embedder."""
        embedder = embedder or self.embedder_for_spec(self.default_spec)
        existing = self.catalog.find_collection(name)
        if existing is None:
            return self.catalog.create_collection(name, embedder.identity.as_dict(), description)
        self.check_embedder(existing, embedder.identity)
        return existing

    @staticmethod
    def check_embedder(collection: Collection, identity: EmbedderIdentity) -> None:
        """Raise EmbedderMismatch naming what differs between the collection's embedder and this one."""
        differing = identity.mismatches(collection.embedder)
        if differing:
            details = ", ".join(f"{k}: {collection.embedder.get(k)!r} vs {getattr(identity, k)!r}" for k in differing)
            raise EmbedderMismatch(
                f"collection {collection.name!r} was built with another embedder ({details});"
                " use the same model or ingest into a new collection"
            )

    # -- vectors ----------------------------------------------------------------------------------

    def vector_path(self, collection: Collection) -> Path:
        """Where a collection's FAISS file lives."""
        return self.data_dir / "vectors" / f"{collection.id}.faiss"

    def vectors(self, collection: Collection) -> VectorIndex:
        """The collection's vector index, loaded once, caught up with the catalog on every call."""
        with self._lock:
            index = self._vectors.get(collection.id)
            if index is None:
                index = self._load_vectors(collection)
                self._vectors[collection.id] = index
        if self.catalog.last_seq(collection.id) > index.seq:
            with self._lock:
                index.catch_up(self.catalog, collection.id)
        return index

    def _load_vectors(self, collection: Collection) -> VectorIndex:
        path = self.vector_path(collection)
        dim = int(collection.embedder["dim"])
        if path.exists():
            try:
                index = VectorIndex.load(path)
                # A file ahead of the catalog (the catalog was restored from an older copy) can't be caught up.
                if index.dim == dim and index.seq <= self.catalog.last_seq(collection.id):
                    index.catch_up(self.catalog, collection.id)
                    return index
            except Exception:  # a damaged derived file is rebuilt, never trusted
                pass
        return VectorIndex.rebuild(self.catalog, collection.id, dim)

    def save_vectors(self, collection: Collection) -> None:
        """Persist the collection's vector index (after catching it up)."""
        index = self.vectors(collection)
        index.save(self.vector_path(collection))

    def forget_vectors(self, collection: Collection) -> None:
        """Drop the cached index and its file (after a collection is deleted or to force a rebuild)."""
        with self._lock:
            self._vectors.pop(collection.id, None)
        self.vector_path(collection).unlink(missing_ok=True)

    # -- writes -----------------------------------------------------------------------------------

    def put_document(
        self, collection: Collection, fields: DocumentFields, chunks: Sequence[ChunkInput], embeddings: np.ndarray,
        sentence_vectors: Sequence[np.ndarray | None] | None = None,
    ) -> tuple[int, list[int]]:
        """Commit one document (one transaction), then bring the in-memory vectors up to date."""
        result = self.catalog.put_document(collection.id, fields, chunks, embeddings, sentence_vectors)
        self.vectors(collection)
        return result

    def delete_collection(self, name: str) -> None:
        """Delete a collection, its documents and its vector file."""
        collection = self.catalog.get_collection(name)
        self.catalog.delete_collection(name)
        self.forget_vectors(collection)

    # -- consistency ------------------------------------------------------------------------------

    def check(self, collection: Collection) -> CheckReport:
        """Compare catalog chunks, FTS rows and the vectors on disk (caught up) exactly, like `git fsck`.

        The vector file is read first, then every catalog read happens in one snapshot, so an ingestion
        committing meanwhile can't show up as a mismatch (the file is never ahead of a later snapshot)."""
        path = self.vector_path(collection)
        try:
            loaded: VectorIndex | str | None = VectorIndex.load(path) if path.exists() else None
        except Exception as exc:
            loaded = f"{path} cannot be read: {exc}"
        with self.catalog.snapshot():
            chunk_ids = self.catalog.chunk_ids(collection.id)
            fts = self.catalog.fts_ids(collection.id)
            report = CheckReport(collection.name, len(chunk_ids), 0, int((fts > 0).sum()))
            report.orphan_fts = sorted(int(-i) for i in fts if i < 0)
            fts_ids = fts[fts > 0]
            report.missing_fts = sorted(int(i) for i in np.setdiff1d(chunk_ids, fts_ids))
            report.orphan_fts += sorted(int(i) for i in np.setdiff1d(fts_ids, chunk_ids))
            index = self._vectors_for_check(collection, report, loaded)
            vector_ids = index.ids() if index is not None else np.zeros(0, dtype=np.int64)
            report.vectors = len(vector_ids)
            report.missing_vectors = sorted(int(i) for i in np.setdiff1d(chunk_ids, vector_ids))
            report.orphan_vectors = sorted(int(i) for i in np.setdiff1d(vector_ids, chunk_ids))
            ids, matrix = self.catalog.embeddings(collection_id=collection.id)
        if len(ids) and matrix.shape[1] != int(collection.embedder["dim"]):
            report.bad_dimensions = [int(i) for i in ids]
        return report

    def _vectors_for_check(
        self, collection: Collection, report: CheckReport, loaded: VectorIndex | str | None
    ) -> VectorIndex | None:
        """The vector file as loaded, caught up to the catalog; None (and the problem reported) if unusable."""
        path = self.vector_path(collection)
        if loaded is None:
            if self.catalog.last_seq(collection.id) == 0:
                return VectorIndex(int(collection.embedder["dim"]))
            report.vector_file_problem = f"{path} is missing"
            return None
        if isinstance(loaded, str):
            report.vector_file_problem = loaded
            return None
        index = loaded
        if index.seq > self.catalog.last_seq(collection.id):
            report.vector_file_problem = f"{path} reflects change {index.seq}, newer than the catalog's last"
            return None
        if index.dim != int(collection.embedder["dim"]):
            report.vector_file_problem = f"{path} has dimension {index.dim}, collection has {collection.embedder['dim']}"
            return None
        index.catch_up(self.catalog, collection.id)
        return index

    def repair(self, collection: Collection) -> None:
        """Rebuild everything derived (FTS rows, vectors) from the catalog's chunks and stored embeddings."""
        self.catalog.rebuild_fts(collection.id)
        index = VectorIndex.rebuild(self.catalog, collection.id, int(collection.embedder["dim"]))
        with self._lock:
            self._vectors[collection.id] = index
        index.save(self.vector_path(collection))
