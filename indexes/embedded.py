"""The embedded store: one data directory holding a SQLite catalog (with FTS5 for BM25) and one FAISS file per
collection (and, for a big one, a tantivy index for BM25: indexes/lexical_index.py), derived from the catalog and
caught up from its change log. No server to run; one machine.

A collection's index is flat (exact) until it holds `ivf_threshold` chunks, then IVF (indexes/vectors.py). The
switch happens when the vectors are saved (after an ingestion, a removal, at shutdown), never per document:
the index is rebuilt from the stored embeddings once and its parameters recorded in the file. A dense search
on an IVF index re-scores its candidates exactly against the stored embeddings, so scores are cosines."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from indexes.backends import StoreOptions
from indexes.catalog import Catalog, embedding_of
from indexes.embedders import EmbedderSpec
from indexes.errors import InvalidInput, StorageError
from indexes.filters import RANGE_OPERATORS, SQL_COLUMNS, Condition, Filters, sql_tree
from indexes.lexical_index import LexicalIndexes, LexicalPolicy
from indexes.records import ADDED_COLUMNS, Records, Row, records_schema
from indexes.store import (
    CheckReport, ChunkRecord, Embedders, IndexChoice, Ranking, SearchQuery, StoreBase, StoredDocument,
)
from indexes.types import ChunkInput, Collection, DocumentFields, DocumentRecord
from indexes.vectors import BATCH, EMBEDDINGS, IndexParams, IndexPolicy, VectorIndex

log = logging.getLogger("docqa.indexes")
CATALOG_FILE = "catalog.sqlite3"
ALLOWED_KEPT = 16  # filters whose chunk ids are kept (the latest ones)
RESCORED = 2  # an IVF search fetches this many times the candidates asked for, re-scored exactly


class EmbeddedStore(StoreBase):
    """Everything under one data directory; safe to share between threads and between processes."""

    def __init__(self, data_dir: Path, embedder_spec: EmbedderSpec | None = None, *,
                 embedders: Embedders | None = None, options: StoreOptions | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.url = f"sqlite:///{self.data_dir.resolve()}"
        try:
            (self.data_dir / "vectors").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create data directory {self.data_dir}: {exc}") from exc
        self.catalog = Catalog(self.data_dir / CATALOG_FILE)
        self.embedders = embedders or Embedders(embedder_spec)
        options = options or StoreOptions()
        self.policy = IndexPolicy(options.ivf_threshold, options.ivf_quantiser, options.ivf_recall, options.mmap)
        self.lexical = LexicalIndexes(self.data_dir / "lexical", self.catalog,
                                      LexicalPolicy(options.lexical, options.lexical_threshold))
        self._vectors: dict[int, VectorIndex] = {}
        self._allowed: dict[tuple[int, int, str], list[int]] = {}  # allowed_ids by (collection, change, filter)
        self._lock = threading.RLock()
        self.records = Records(_SQLiteRecords(self.catalog))
        if self.catalog.converted:  # the catalog's vectors were just rewritten as float16: so are the files
            self.flush()

    # -- vectors ----------------------------------------------------------------------------------

    def vector_path(self, collection: Collection) -> Path:
        """Where a collection's FAISS file lives."""
        return self.data_dir / "vectors" / f"{collection.id}.faiss"

    def vectors(self, collection: Collection) -> VectorIndex:
        """The collection's vector index, loaded once, caught up with the catalog on every call."""
        with self._lock:
            index = self._vectors.get(collection.id)
            # None, or one of another dimension: the collection, still empty, took another embedder (set_embedder,
            # perhaps in another process) since it was loaded
            if index is None or index.dim != int(collection.embedder["dim"]):
                index = self._load_vectors(collection)
                self._vectors[collection.id] = index
        if self.catalog.last_seq(collection.id) > index.seq:
            with self._lock:
                index = self._vectors[collection.id]
                if index.mapped:  # a mapped file is read-only: changes need it in memory
                    index = self._vectors[collection.id] = self._load_vectors(collection, mmap=False)
                elif index.catch_up(self.catalog, collection.id) is None:  # another process compacted the log past it
                    index = self._vectors[collection.id] = self._load_vectors(collection)
        return index

    def _load_vectors(self, collection: Collection, mmap: bool | None = None) -> VectorIndex:
        """The saved index caught up with the catalog; one that cannot be trusted is rebuilt, and the log says why.
        With `mmap` (default: the policy's) a file the catalog has nothing newer for is mapped, not read."""
        path = self.vector_path(collection)
        dim = int(collection.embedder["dim"])
        if path.exists():
            last_seq = self.catalog.last_seq(collection.id)
            try:
                index = VectorIndex.load(path, mmap=self.policy.mmap if mmap is None else mmap)
                if index.mapped and index.seq < last_seq:
                    index = VectorIndex.load(path)
            except Exception as exc:  # a damaged derived file is rebuilt, never trusted
                why = f"cannot be read ({type(exc).__name__}: {exc})"
            else:
                if index.dim != dim:
                    why = f"holds {index.dim}-dimensional vectors, the collection's are {dim}"
                elif index.embeddings != EMBEDDINGS:
                    why = f"was built from {index.embeddings} vectors, the catalog's are {EMBEDDINGS}"
                elif index.seq > last_seq:  # the catalog was restored from an older copy: no catching up
                    why = f"is newer than the catalog (change {index.seq}, the catalog's last is {last_seq})"
                elif index.catch_up(self.catalog, collection.id) is None:  # an older copy written back
                    why = f"is behind the compacted change log (change {index.seq})"
                else:
                    return index
            log.warning("vector file %s %s; rebuilding it from the catalog", path, why,
                        extra={"collection": collection.name})
        return VectorIndex.rebuild(self.catalog, collection.id, dim, policy=self.policy)

    def save_vectors(self, collection: Collection) -> None:
        """Persist the collection's vector index (after catching it up, and rebuilding it as another kind if the
        collection crossed the policy's threshold) and catch its tantivy index up (if it keeps one), then drop
        the changes both reflect from the log: only they need them, so the log holds what either lacks yet. A
        mapped index is its file already."""
        index = self.vectors(collection)
        wanted = self.policy.wanted(index.params, index.ntotal)
        if wanted is not None:
            log.info("collection %s has %d chunks: rebuilding its vectors as %s", collection.name, index.ntotal,
                     wanted.kind, extra={"collection": collection.name})
            index = self._rebuild_vectors(collection, wanted)
        seq = index.seq if index.mapped else index.save(self.vector_path(collection))
        lexical = self.lexical.sync(collection.id, index.ntotal)
        self.catalog.compact_changes(collection.id, seq if lexical is None else min(seq, lexical))

    def _rebuild_vectors(self, collection: Collection, params: IndexParams | None) -> VectorIndex:
        """Rebuild the collection's index from the stored embeddings (`params`, or by size) and use it."""
        index = VectorIndex.rebuild(self.catalog, collection.id, int(collection.embedder["dim"]), params, self.policy)
        with self._lock:
            self._vectors[collection.id] = index
        return self.vectors(collection)  # caught up with whatever committed while it was built

    def forget_vectors(self, collection: Collection) -> None:
        """Drop the cached index and its file (after a collection is deleted or to force a rebuild)."""
        with self._lock:
            self._vectors.pop(collection.id, None)
        self.vector_path(collection).unlink(missing_ok=True)

    def warm_up(self, collection: Collection) -> None:
        """Load the collection's vectors (caught up with the catalog) and bring its tantivy index up to date (built
        if it needs one and has none), so its first search is fast."""
        self.lexical.sync(collection.id, self.vectors(collection).ntotal)

    def flush(self, collection: Collection | None = None) -> None:
        """Save the vector files (caught up) of one collection or all: after a batch and at shutdown."""
        for c in [collection] if collection else self.catalog.list_collections():
            self.save_vectors(c)

    def ping(self) -> None:
        """Raise StorageError unless the catalog answers."""
        try:
            self.catalog.db.execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"catalog {self.catalog.path} does not answer: {exc}") from exc

    def close(self) -> None:
        """Close this thread's catalog connection."""
        self.catalog.close()

    # -- collections ------------------------------------------------------------------------------

    def create_collection(self, name: str, embedder: dict[str, Any], description: str = "") -> Collection:
        """Create a collection; Conflict if the name is taken."""
        return self.catalog.create_collection(name, embedder, description)

    def set_embedder(self, collection: Collection, embedder: dict[str, Any]) -> Collection:
        """Record another embedder for a collection that holds no chunks (its empty vector file goes with the
        old one's dimension); the collection as recorded afterwards, unchanged once it holds chunks."""
        if self.catalog.set_embedder(collection.id, embedder):
            self.forget_vectors(collection)
        return self.catalog.get_collection(collection.name)

    def find_collection(self, name: str) -> Collection | None:
        """The collection called `name`, or None."""
        return self.catalog.find_collection(name)

    def list_collections(self) -> list[Collection]:
        """All collections, by name."""
        return self.catalog.list_collections()

    def delete_collection(self, name: str) -> None:
        """Delete a collection, its documents and its vector file."""
        collection = self.catalog.get_collection(name)
        self.catalog.delete_collection(name)
        self.forget_vectors(collection)
        self.lexical.forget(collection.id)

    def counts(self, collection: Collection) -> dict[str, int]:
        """Documents (ok, failed) and chunks in a collection."""
        return self.catalog.counts(collection.id)

    # -- documents --------------------------------------------------------------------------------

    def put_document(
        self, collection: Collection, fields: DocumentFields, chunks: Sequence[ChunkInput], embeddings: np.ndarray,
        sentence_vectors: Sequence[np.ndarray | None] | None = None,
    ) -> tuple[int, list[int]]:
        """Commit one document (one transaction), then bring the in-memory vectors up to date."""
        result = self.catalog.put_document(collection.id, fields, chunks, embeddings, sentence_vectors)
        self.vectors(collection)
        return result

    def record_failure(self, collection: Collection, fields: DocumentFields, error: str) -> int:
        """Store a failed document (no chunks), replacing any earlier version."""
        return self.catalog.record_failure(collection.id, fields, error)

    def delete_document(self, collection: Collection, document_id: int) -> None:
        """Delete a document with its chunks and lexical rows; its vectors go from the saved file too."""
        self.catalog.get_document(document_id, collection.id)
        self.catalog.delete_document(document_id)
        self.save_vectors(collection)

    def find_document(self, collection: Collection, source: str) -> DocumentRecord | None:
        """The document with this source in the collection, or None."""
        return self.catalog.find_document(collection.id, source)

    def get_document(self, document_id: int, collection: Collection | None = None) -> DocumentRecord:
        """A document by id (optionally checked to be in a collection); NotFound otherwise."""
        return self.catalog.get_document(document_id, None if collection is None else collection.id)

    def list_documents(self, collection: Collection, status: str | None = None) -> list[DocumentRecord]:
        """Documents of a collection, by source; optionally only `ok` or `failed` ones."""
        return self.catalog.list_documents(collection.id, status)

    def document_text(self, document_id: int) -> str:
        """The full extracted text of a document."""
        return self.catalog.document_text(document_id)

    def document_chunks(self, document_id: int) -> list[dict[str, Any]]:
        """A document's chunks in order, without embeddings."""
        return self.catalog.document_chunks(document_id)

    def export_document(self, document_id: int) -> StoredDocument:
        """A document with its text, chunks, embeddings and sentence vectors, as stored."""
        with self.catalog.snapshot() as db:
            doc = self.catalog.get_document(document_id)
            row = db.execute("SELECT text FROM documents WHERE id = ?", (document_id,)).fetchone()
            rows = db.execute(
                "SELECT text, embed_text, start, end, page_start, page_end, heading_path, embedding, sentence_vectors,"
                " locator, ocr FROM chunks WHERE document_id = ? ORDER BY ordinal", (document_id,),
            ).fetchall()
        dim = int(self.catalog.get_collection_by_id(doc.collection_id).embedder["dim"])
        chunks = [ChunkInput(r[0], r[1], r[2], r[3], r[4], r[5], tuple(json.loads(r[6])), r[9] and json.loads(r[9]),
                             bool(r[10])) for r in rows]
        embeddings = (np.vstack([embedding_of(r[7]) for r in rows]) if rows
                      else np.zeros((0, dim), dtype=np.float32))
        sentences = [None if r[8] is None else np.frombuffer(r[8], dtype=np.float16).reshape(-1, dim) for r in rows]
        fields = DocumentFields(doc.source, doc.sha256 or "", doc.size or 0, doc.mtime, doc.title, doc.metadata,
                                doc.pages, tuple(doc.warnings), row[0] if row else None, tuple(doc.ocr_pages))
        return StoredDocument(fields, doc.status, doc.error, chunks, embeddings, sentences)

    # -- chunks -----------------------------------------------------------------------------------

    def chunks(self, chunk_ids: Sequence[int]) -> dict[int, ChunkRecord]:
        """Chunk records by id (with their document's title, source and metadata); missing ids left out."""
        return {
            i: ChunkRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], tuple(json.loads(r[8])), r[9], r[10],
                           json.loads(r[11]), r[12] and json.loads(r[12]), bool(r[13]))
            for i, r in self.catalog.chunk_rows(chunk_ids).items()
        }

    def embeddings(self, chunk_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Stored vectors of the given chunks, as (ids, matrix), ids ascending."""
        return self.catalog.embeddings(chunk_ids)

    def chunk_vectors(self, chunk_ids: Sequence[int], dim: int) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
        """For each chunk found: its vector and its sentences' vectors (None where it has none)."""
        return self.catalog.chunk_and_sentence_vectors(chunk_ids, dim)

    # -- search -----------------------------------------------------------------------------------

    def allowed_ids(self, collection: Collection, filters: Filters) -> list[int] | None:
        """The chunk ids a filter lets through (None: no filter). A hybrid search asks for them twice (three
        times with feedback), so they are kept per collection change: any commit gives a new key."""
        if filters.empty:
            return None
        key = (collection.id, self.catalog.last_seq(collection.id), filters.model_dump_json())
        with self._lock:
            if key in self._allowed:
                return self._allowed[key]
        where, args = compile_filters(filters)
        rows = self.catalog.db.execute(
            f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.collection_id = ? AND {where}",
            [collection.id, *args],
        )
        allowed = [r[0] for r in rows]
        with self._lock:
            self._allowed[key] = allowed
            while len(self._allowed) > ALLOWED_KEPT:
                del self._allowed[next(iter(self._allowed))]
        return allowed

    def dense_search(self, query: SearchQuery) -> Ranking:
        """FAISS inner product (cosine) over the collection's vectors, exact, within the filters."""
        if query.vector is None:
            raise ValueError("a dense search needs the query vector")
        allowed = self.allowed_ids(query.collection, query.filters)
        index = self.vectors(query.collection)
        if not index.ivf:
            return index.search(query.vector, query.depth, allowed)
        candidates = [i for i, _ in index.search(query.vector, query.depth * RESCORED, allowed)]
        ids, matrix = self.catalog.embeddings(candidates)
        if not len(ids):
            return []
        scores = matrix @ np.asarray(query.vector, dtype=np.float32).reshape(-1)
        best = np.argsort(-scores, kind="stable")[: query.depth]
        return [(int(ids[i]), float(scores[i])) for i in best]

    def lexical_search(self, query: SearchQuery) -> Ranking:
        """BM25 within the filters: by the collection's tantivy index when it holds exactly the catalog's last
        change, else over its FTS5 table."""
        allowed = self.allowed_ids(query.collection, query.filters)
        ranked = self.lexical.search(query.collection.id, query.text, query.depth, allowed)
        if ranked is not None:
            return ranked
        return self.catalog.lexical_search(query.collection.id, query.text, query.depth, allowed)

    def lexical_engine(self, collection: Collection) -> str:
        """What ranks the collection's BM25 now: `tantivy` (its index is caught up) or `fts5`."""
        return self.lexical.engine(collection.id)

    def last_seq(self, collection: Collection) -> int:
        """The collection's newest change sequence number."""
        return self.catalog.last_seq(collection.id)

    # -- consistency ------------------------------------------------------------------------------

    def check(self, collection: Collection) -> CheckReport:
        """Compare catalog chunks, FTS rows, the tantivy index (if kept) and the vectors on disk (caught up)
        exactly, like `git fsck`.

        The vector file and the tantivy index are read first, then every catalog read happens in one snapshot, so
        an ingestion committing meanwhile can't show up as a mismatch (neither is ahead of a later snapshot)."""
        path = self.vector_path(collection)
        try:
            loaded: VectorIndex | str | None = VectorIndex.load(path, mmap=self.policy.mmap) if path.exists() else None
        except Exception as exc:
            loaded = f"{path} cannot be read: {exc}"
        lexical = self.lexical.read_for_check(collection.id)
        with self.catalog.snapshot():
            chunk_ids = self.catalog.chunk_ids(collection.id)
            fts = self.catalog.fts_ids(collection.id)
            report = CheckReport(collection.name, len(chunk_ids), 0, int((fts > 0).sum()))
            report.orphan_lexical = sorted(int(-i) for i in fts if i < 0)
            fts_ids = fts[fts > 0]
            report.missing_lexical = sorted(int(i) for i in np.setdiff1d(chunk_ids, fts_ids))
            report.orphan_lexical += sorted(int(i) for i in np.setdiff1d(fts_ids, chunk_ids))
            self.lexical.compare(collection.id, lexical, fts_ids, report)
            index = self._vectors_for_check(collection, report, loaded)
            vector_ids = index.ids() if index is not None else np.zeros(0, dtype=np.int64)
            report.vectors = len(vector_ids)
            report.missing_vectors = sorted(int(i) for i in np.setdiff1d(chunk_ids, vector_ids))
            report.orphan_vectors = sorted(int(i) for i in np.setdiff1d(vector_ids, chunk_ids))
            dim = int(collection.embedder["dim"])
            checked = _dimension_check(self.catalog.embedding_batches(collection.id, BATCH), dim, report)
            if index is not None:
                report.index = index.params.as_dict()
                report.wrong_vectors = sorted(index.disagreeing(checked))
            else:
                for _ in checked:
                    pass
        return report

    def _vectors_for_check(
        self, collection: Collection, report: CheckReport, loaded: VectorIndex | str | None
    ) -> VectorIndex | None:
        """The vector file as loaded, caught up to the catalog; None (and the problem reported) if unusable."""
        path = self.vector_path(collection)
        if loaded is None:
            if self.catalog.last_seq(collection.id) == 0:
                return VectorIndex(int(collection.embedder["dim"]))
            report.problems.append(f"{path} is missing")
            return None
        if isinstance(loaded, str):
            report.problems.append(loaded)
            return None
        index = loaded
        if index.seq > self.catalog.last_seq(collection.id):
            report.problems.append(f"{path} reflects change {index.seq}, newer than the catalog's last")
            return None
        if index.dim != int(collection.embedder["dim"]):
            report.problems.append(f"{path} has dimension {index.dim}, collection has {collection.embedder['dim']}")
            return None
        if index.embeddings != EMBEDDINGS:
            report.problems.append(f"{path} was built from {index.embeddings} vectors, the catalog's are {EMBEDDINGS}")
            return None
        if index.mapped and index.seq < self.catalog.last_seq(collection.id):
            index = VectorIndex.load(path)  # catching up needs it in memory
        if index.catch_up(self.catalog, collection.id) is None:
            report.problems.append(f"{path} reflects change {index.seq}, older than the change log kept for it")
            return None
        return index

    def repair(self, collection: Collection, index: IndexChoice | None = None) -> None:
        """Rebuild everything derived (FTS rows, the tantivy index, vectors) from the catalog's chunks and stored
        embeddings; the vectors as `index` says, or as the kind recorded in the file (by size if it was `auto` or
        is lost)."""
        self.catalog.rebuild_fts(collection.id)
        self.lexical.rebuild(collection.id, self.catalog.counts(collection.id)["chunks"])
        self._rebuild_vectors(collection, self._params_for(collection, index))
        self.save_vectors(collection)

    def _params_for(self, collection: Collection, choice: IndexChoice | None) -> IndexParams | None:
        """What `repair` builds: None (by size) for `auto`, else the kind asked for (or recorded), pinned."""
        if choice is None:
            try:
                recorded = IndexParams.from_dict(VectorIndex.read_header(self.vector_path(collection)).get("index", {}))
            except Exception:  # no file, or a damaged one: nothing recorded to keep
                return None
            return None if recorded.chosen == "auto" else IndexParams(recorded.kind, quantiser=recorded.quantiser,
                                                                      chosen=recorded.chosen)
        if choice.kind in ("auto", "flat") and (choice.nlist or choice.nprobe or choice.quantiser):
            raise InvalidInput("--nlist, --nprobe and --quantiser go with --index ivf")
        if choice.kind == "auto":
            return None
        if choice.kind == "flat":
            return IndexParams("flat", chosen="flat")
        if choice.kind != "ivf":
            raise InvalidInput(f"--index must be auto, flat or ivf, got {choice.kind!r}")
        return IndexParams("ivf", nlist=choice.nlist or 0, nprobe=choice.nprobe or 0,
                           quantiser=choice.quantiser or self.policy.quantiser, chosen="ivf")


def _dimension_check(batches: Iterator[tuple[np.ndarray, np.ndarray]], dim: int,
                     report: CheckReport) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pass the stored vectors on, noting in the report the ids of any not of the collection's dimension."""
    for ids, matrix in batches:
        if matrix.shape[1] != dim:
            report.bad_dimensions += [int(i) for i in ids]
        yield ids, matrix


# -- filters, compiled for SQLite -----------------------------------------------------------------------


def compile_filters(filters: Filters) -> tuple[str, list[Any]]:
    """A WHERE fragment over documents `d`, with its arguments."""
    clauses: list[str] = []
    args: list[Any] = []
    if filters.document_ids is not None:
        ids = [int(i) for i in filters.document_ids]
        # one JSON parameter, not one per id: a filter may name more ids than SQLite binds variables
        clauses.append("d.id IN (SELECT value FROM json_each(?))")
        args.append(json.dumps(ids))
    if filters.source_glob:
        clauses.append("d.source GLOB ?")
        args.append(filters.source_glob)
    tree = filters.conditions()
    if tree is not None:
        clauses.append(sql_tree(tree, lambda c: _condition(c, args)))
    return " AND ".join(clauses) or "1", args


def _condition(c: Condition, args: list[Any]) -> str:
    key = c.metadata_key
    value = f"json_extract(d.metadata, '$.\"{key}\"')" if key else SQL_COLUMNS[c.field]
    # what kind of value is stored: 'integer'/'real' and 'text' as SQLite types it, JSON types for metadata
    kind = f"json_type(d.metadata, '$.\"{key}\"')" if key else f"typeof({value})"
    if c.op in ("eq", "in", "ne", "not_in"):
        values = c.values
        args.extend(values)
        member = f"{value} IN ({','.join('?' * len(values))})"
        return f"({member})" if c.op in ("eq", "in") else f"({value} IS NULL OR NOT {member})"
    args.append(c.value)
    kinds = "('text')" if isinstance(c.value, str) else "('integer', 'real')"
    return f"({kind} IN {kinds} AND {value} {RANGE_OPERATORS[c.op]} ?)"


# -- records on the catalog's connection -------------------------------------------------------------


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return self.db.execute(sql, args).fetchall()

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.db.executemany(sql, rows)


class _SQLiteRecords:
    """The records' SQL surface on the catalog database (its tables created or brought up to date on open)."""

    dialect = "sqlite"

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        with catalog.transaction() as db:
            for statement in records_schema(self.dialect):
                db.execute(statement)
            for table, column, kind in ADDED_COLUMNS:
                if column not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return self.catalog.db.execute(sql, args).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[_Transaction]:
        with self.catalog.transaction() as db:
            yield _Transaction(db)
