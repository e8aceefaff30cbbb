"""The catalog: SQLite (WAL) holding collections, documents, chunks, FTS5 rows and a change log.

It is the source of truth. Vectors live here too (as float16 blobs since schema 6: half the bytes, and recall@10
against float32 of 0.99+, docs/quality.md) so the FAISS index can always be rebuilt or caught up without
re-parsing or re-embedding; they come back as float32.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from indexes.errors import Conflict, NotFound, StorageError
from indexes.lexical import ANALYSIS_VERSION, ROW_BUDGET, bounded_stems, fts_body, or_expression, query_stems
from indexes.schema import SCHEMA, SCHEMA_VERSION, create_fts, fts_table
from indexes.store import chunk_dict
from indexes.types import ChunkInput, Collection, DocumentFields, DocumentRecord


_DOC_COLUMNS = (
    "d.id, d.collection_id, d.source, d.title, d.sha256, d.size, d.mtime, d.status, d.error, d.warnings,"
    " d.metadata, d.pages, d.created_at, d.updated_at,"
    " (SELECT COUNT(*) FROM chunks c WHERE c.document_id = d.id), d.ocr_pages"
)

# Columns later schemas added, with how older catalogs get them (their chunks then have no locator: their pages
# stand for it, indexes/locators.py).
_ADDED_COLUMNS = (
    ("chunks", "sentence_vectors", "BLOB"),  # schema 2 had none: such chunks score by the chunk vector alone
    ("chunks", "locator", "TEXT"),
    ("chunks", "ocr", "INTEGER NOT NULL DEFAULT 0"),
    ("documents", "ocr_pages", "TEXT NOT NULL DEFAULT '[]'"),
)


TERM_COUNTS_TTL_S = 300.0  # how long a term's row count steers BM25's bound (`Catalog.term_frequencies`)
TERM_COUNTS_KEPT = 100_000
FLOAT16_SINCE = 6  # the schema from which chunks.embedding holds float16


def embedding_blob(vector: np.ndarray) -> bytes:
    """A chunk vector as the catalog stores it: float16."""
    return np.asarray(vector, dtype=np.float16).tobytes()


def embedding_of(blob: bytes) -> np.ndarray:
    """A stored chunk vector, as float32."""
    return np.frombuffer(blob, dtype=np.float16).astype(np.float32)


def _document(row: Sequence[Any]) -> DocumentRecord:
    return DocumentRecord(
        *row[:9], json.loads(row[9]), json.loads(row[10]), *row[11:14], chunk_count=row[14],
        ocr_pages=json.loads(row[15]),
    )


def _collection(row: Sequence[Any]) -> Collection:
    return Collection(row[0], row[1], row[2], json.loads(row[3]), row[4])


class Catalog:
    """SQLite access for one data directory; one connection per thread, writes serialised by SQLite."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._term_counts: dict[tuple[int, str], tuple[int, float]] = {}  # (collection, term): (rows, when)
        self._term_counts_lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._write_lock:  # executescript commits on its own, so the script holds its transaction
                self.db.executescript(
                    f"BEGIN IMMEDIATE; {SCHEMA}"
                    f" INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;"
                )
            self._migrate()
        except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError) as exc:
            raise StorageError(f"cannot open catalog {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        """Bring a catalog written by an older docqa up to this schema and text analysis (FTS rows are derived,
        so a table missing or analysed another way is rebuilt from the chunks)."""
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        self.converted = self._float16_embeddings()
        analysed = self.db.execute("SELECT value FROM meta WHERE key = 'analysis_version'").fetchone()
        reanalyse = analysed is None or int(analysed[0]) != ANALYSIS_VERSION
        for collection in self.list_collections():
            if reanalyse or fts_table(collection.id) not in tables:
                self.rebuild_fts(collection.id)
        for table, column, kind in _ADDED_COLUMNS:
            if column not in {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}:
                with self.transaction() as db:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        if "chunks_fts" in tables:  # schema 1 kept every collection in one FTS table
            with self.transaction() as db:
                db.execute("DROP TABLE chunks_fts")
        with self.transaction() as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('analysis_version', ?)", (str(ANALYSIS_VERSION),))

    def _float16_embeddings(self) -> int:
        """Rewrite the float32 chunk vectors of a catalog from before schema 6 as float16, in the transaction that
        records the new schema (so a crash leaves all or none converted, and a second process waiting on the lock
        finds it done); returns how many were converted. The vector files derived from them are rebuilt: see
        `indexes/vectors.py` (`embeddings` in the header)."""
        with self.transaction() as db:
            (version,) = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if int(version) >= FLOAT16_SINCE:
                return 0
            converted, last = 0, 0
            while True:
                rows = db.execute("SELECT id, embedding FROM chunks WHERE id > ? ORDER BY id LIMIT 10000", (last,)).fetchall()
                if not rows:
                    break
                db.executemany("UPDATE chunks SET embedding = ? WHERE id = ?",
                               [(embedding_blob(np.frombuffer(r[1], dtype=np.float32)), r[0]) for r in rows])
                converted, last = converted + len(rows), rows[-1][0]
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(FLOAT16_SINCE),))
        return converted

    # -- connections and transactions -------------------------------------------------------------

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode; transactions are explicit)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error: all or nothing."""
        with self._write_lock:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction on this thread's connection: every read inside sees the same committed state,
        whatever other connections commit meanwhile (WAL). Inside another transaction, that one."""
        db = self.db
        if db.in_transaction:  # inside one already: its reads are this one's
            yield db
            return
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- collections ------------------------------------------------------------------------------

    def create_collection(self, name: str, embedder: dict[str, Any], description: str = "") -> Collection:
        """Create a collection; Conflict if the name is taken."""
        try:
            with self.transaction() as db:
                cur = db.execute(
                    "INSERT INTO collections(name, description, embedder, created_at) VALUES (?, ?, ?, ?)",
                    (name, description, json.dumps(embedder, sort_keys=True), time.time()),
                )
                create_fts(db, int(cur.lastrowid))
        except sqlite3.IntegrityError:
            raise Conflict(f"collection {name!r} already exists") from None
        return self.get_collection(name)

    def set_embedder(self, collection_id: int, embedder: dict[str, Any]) -> bool:
        """Record another embedder for a collection that holds no chunks; False (nothing changed) once it does."""
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE collections SET embedder = ? WHERE id = ?"
                " AND NOT EXISTS (SELECT 1 FROM chunks WHERE collection_id = ?)",
                (json.dumps(embedder, sort_keys=True), collection_id, collection_id),
            )
            return cur.rowcount == 1

    def get_collection(self, name: str) -> Collection:
        """The collection called `name`; NotFound if there is none."""
        return self._collection_where("name", name, repr(name))

    def get_collection_by_id(self, collection_id: int) -> Collection:
        """The collection with this id; NotFound if there is none."""
        return self._collection_where("id", collection_id, str(collection_id))

    def _collection_where(self, column: str, value: object, label: str) -> Collection:
        row = self.db.execute(
            f"SELECT id, name, description, embedder, created_at FROM collections WHERE {column} = ?", (value,)
        ).fetchone()
        if row is None:
            raise NotFound(f"collection {label} not found")
        return _collection(row)

    def find_collection(self, name: str) -> Collection | None:
        """The collection called `name`, or None."""
        try:
            return self.get_collection(name)
        except NotFound:
            return None

    def list_collections(self) -> list[Collection]:
        """All collections, by name."""
        rows = self.db.execute(
            "SELECT id, name, description, embedder, created_at FROM collections ORDER BY name"
        ).fetchall()
        return [_collection(r) for r in rows]

    def delete_collection(self, name: str) -> None:
        """Delete a collection with its documents, chunks and FTS rows."""
        collection = self.get_collection(name)
        with self.transaction() as db:
            db.execute(f"DROP TABLE IF EXISTS {fts_table(collection.id)}")
            db.execute("DELETE FROM chunks WHERE collection_id = ?", (collection.id,))
            db.execute("DELETE FROM documents WHERE collection_id = ?", (collection.id,))
            db.execute("DELETE FROM changes WHERE collection_id = ?", (collection.id,))
            db.execute("DELETE FROM compacted WHERE collection_id = ?", (collection.id,))
            db.execute("DELETE FROM collections WHERE id = ?", (collection.id,))

    # -- documents --------------------------------------------------------------------------------

    def find_document(self, collection_id: int, source: str) -> DocumentRecord | None:
        """The document with this source in the collection, or None."""
        row = self.db.execute(
            f"SELECT {_DOC_COLUMNS} FROM documents d WHERE d.collection_id = ? AND d.source = ?",
            (collection_id, source),
        ).fetchone()
        return _document(row) if row else None

    def get_document(self, document_id: int, collection_id: int | None = None) -> DocumentRecord:
        """A document by id (optionally checked to be in a collection); NotFound otherwise."""
        row = self.db.execute(f"SELECT {_DOC_COLUMNS} FROM documents d WHERE d.id = ?", (document_id,)).fetchone()
        if row is None or (collection_id is not None and row[1] != collection_id):
            raise NotFound(f"document {document_id} not found")
        return _document(row)

    def document_text(self, document_id: int) -> str:
        """The full extracted text of a document."""
        row = self.db.execute("SELECT text FROM documents WHERE id = ?", (document_id,)).fetchone()
        if row is None:
            raise NotFound(f"document {document_id} not found")
        return row[0] or ""

    def list_documents(self, collection_id: int, status: str | None = None) -> list[DocumentRecord]:
        """Documents of a collection, by source; optionally only `ok` or `failed` ones."""
        sql = f"SELECT {_DOC_COLUMNS} FROM documents d WHERE d.collection_id = ?"
        args: list[Any] = [collection_id]
        if status:
            sql += " AND d.status = ?"
            args.append(status)
        return [_document(r) for r in self.db.execute(sql + " ORDER BY d.source", args)]

    def _delete_document_rows(self, db: sqlite3.Connection, document_id: int, collection_id: int) -> None:
        chunk_ids = [r[0] for r in db.execute("SELECT id FROM chunks WHERE document_id = ?", (document_id,))]
        db.executemany(f"DELETE FROM {fts_table(collection_id)} WHERE rowid = ?", [(i,) for i in chunk_ids])
        db.executemany(
            "INSERT INTO changes(collection_id, chunk_id, op) VALUES (?, ?, 'del')",
            [(collection_id, i) for i in chunk_ids],
        )
        db.execute("DELETE FROM chunks WHERE document_id = ?", (document_id,))
        db.execute("DELETE FROM documents WHERE id = ?", (document_id,))

    def put_document(
        self,
        collection_id: int,
        fields: DocumentFields,
        chunks: Sequence[ChunkInput],
        embeddings: np.ndarray,
        sentence_vectors: Sequence[np.ndarray | None] | None = None,
    ) -> tuple[int, list[int]]:
        """Insert or replace a document with its chunks, FTS rows and vectors, in one transaction.

        Returns the new document id and its chunk ids, in order.
        """
        if len(chunks) != len(embeddings):
            raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
        vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
        sentences = [None] * len(chunks) if sentence_vectors is None else list(sentence_vectors)
        if len(sentences) != len(chunks):
            raise ValueError(f"{len(chunks)} chunks but {len(sentences)} sentence vector sets")
        now = time.time()
        with self.transaction() as db:
            document_id = self._insert_document(db, collection_id, fields, "ok", None, now)
            chunk_ids = []
            for ordinal, (chunk, vector, sentence) in enumerate(zip(chunks, vectors, sentences)):
                cur = db.execute(
                    "INSERT INTO chunks(document_id, collection_id, ordinal, text, embed_text, start, end,"
                    " page_start, page_end, heading_path, embedding, sentence_vectors, locator, ocr)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        document_id, collection_id, ordinal, chunk.text, chunk.embed_text, chunk.start, chunk.end,
                        chunk.page_start, chunk.page_end, json.dumps(list(chunk.heading_path)), embedding_blob(vector),
                        None if sentence is None else np.asarray(sentence, dtype=np.float16).tobytes(),
                        None if chunk.locator is None else json.dumps(chunk.locator), int(chunk.ocr),
                    ),
                )
                chunk_ids.append(int(cur.lastrowid))
            db.executemany(
                f"INSERT INTO {fts_table(collection_id)}(rowid, body) VALUES (?, ?)",
                [(i, fts_body(c.text, c.heading_path)) for i, c in zip(chunk_ids, chunks)],
            )
            db.executemany(
                "INSERT INTO changes(collection_id, chunk_id, op) VALUES (?, ?, 'add')",
                [(collection_id, i) for i in chunk_ids],
            )
        return document_id, chunk_ids

    def _insert_document(
        self, db: sqlite3.Connection, collection_id: int, fields: DocumentFields, status: str, error: str | None,
        now: float,
    ) -> int:
        """Replace any document with the same source by a new row (keeping its creation time); returns its id."""
        created = self._replace_row(db, collection_id, fields.source, now)
        cur = db.execute(
            "INSERT INTO documents(collection_id, source, title, sha256, size, mtime, status, error, warnings,"
            " metadata, pages, text, created_at, updated_at, ocr_pages)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                collection_id, fields.source, fields.title, fields.sha256, fields.size, fields.mtime, status, error,
                json.dumps(list(fields.warnings)), json.dumps(fields.metadata or {}, sort_keys=True),
                fields.pages, fields.text, created, now, json.dumps(list(fields.ocr_pages)),
            ),
        )
        return int(cur.lastrowid)

    def _replace_row(self, db: sqlite3.Connection, collection_id: int, source: str, now: float) -> float:
        """Remove an existing document with the same source; returns its creation time (or now)."""
        row = db.execute(
            "SELECT id, created_at FROM documents WHERE collection_id = ? AND source = ?", (collection_id, source)
        ).fetchone()
        if row is None:
            return now
        self._delete_document_rows(db, row[0], collection_id)
        return row[1]

    def record_failure(self, collection_id: int, fields: DocumentFields, error: str) -> int:
        """Store a failed document (no chunks), replacing any earlier version: the file as it is now can't be read."""
        now = time.time()
        with self.transaction() as db:
            return self._insert_document(db, collection_id, fields, "failed", error, now)

    def delete_document(self, document_id: int) -> None:
        """Delete a document with its chunks and FTS rows."""
        doc = self.get_document(document_id)
        with self.transaction() as db:
            self._delete_document_rows(db, doc.id, doc.collection_id)

    # -- chunks -----------------------------------------------------------------------------------

    def chunk_rows(self, chunk_ids: Sequence[int], db: sqlite3.Connection | None = None) -> dict[int, sqlite3.Row]:
        """Chunk rows joined with their document, keyed by chunk id; missing ids are left out."""
        db = db or self.db
        out: dict[int, Any] = {}
        ids = list(chunk_ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ",".join("?" * len(part))
            cur = db.execute(
                "SELECT c.id, c.document_id, c.ordinal, c.text, c.start, c.end, c.page_start, c.page_end,"
                " c.heading_path, d.title, d.source, d.metadata, c.locator, c.ocr"
                f" FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id IN ({marks})",
                part,
            )
            for row in cur:
                out[row[0]] = row
        return out

    def document_chunks(self, document_id: int) -> list[dict[str, Any]]:
        """A document's chunks in order, without embeddings."""
        rows = self.db.execute(
            "SELECT id, ordinal, text, start, end, page_start, page_end, heading_path, locator, ocr FROM chunks"
            " WHERE document_id = ? ORDER BY ordinal",
            (document_id,),
        ).fetchall()
        return [chunk_dict(r[:8], r[8] and json.loads(r[8]), bool(r[9])) for r in rows]

    def chunk_ids(self, collection_id: int) -> np.ndarray:
        """Every chunk id of a collection, ascending."""
        rows = self.db.execute("SELECT id FROM chunks WHERE collection_id = ? ORDER BY id", (collection_id,))
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def chunk_and_sentence_vectors(
        self, chunk_ids: Sequence[int], dim: int, db: sqlite3.Connection | None = None
    ) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
        """For each chunk id found: its vector and its sentences' vectors (None where it has none)."""
        found: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        ids = list(chunk_ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            rows = (db or self.db).execute(
                f"SELECT id, embedding, sentence_vectors FROM chunks WHERE id IN ({','.join('?' * len(part))})", part
            )
            for chunk_id, vector, sentences in rows:
                found[chunk_id] = (
                    embedding_of(vector),
                    None if sentences is None else np.frombuffer(sentences, dtype=np.float16).reshape(-1, dim),
                )
        return found

    def embeddings(self, chunk_ids: Sequence[int] | None = None, collection_id: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Stored vectors, as (ids, matrix): for the given chunk ids, or for a whole collection."""
        if chunk_ids is None:
            rows = self.db.execute(
                "SELECT id, embedding FROM chunks WHERE collection_id = ? ORDER BY id", (collection_id,)
            ).fetchall()
        else:
            rows = []
            ids = list(chunk_ids)
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                rows += self.db.execute(
                    f"SELECT id, embedding FROM chunks WHERE id IN ({','.join('?' * len(part))}) ORDER BY id", part
                ).fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        ids_out = np.array([r[0] for r in rows], dtype=np.int64)
        matrix = np.vstack([embedding_of(r[1]) for r in rows])
        return ids_out, matrix

    def embedding_batches(self, collection_id: int, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """A collection's stored vectors as (ids, matrix) batches of up to `size`, ids ascending, so an index of
        millions is built without holding every row at once (call inside `snapshot()` for one state)."""
        last = 0
        while True:
            rows = self.db.execute(
                "SELECT id, embedding FROM chunks WHERE collection_id = ? AND id > ? ORDER BY id LIMIT ?",
                (collection_id, last, size),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield np.array([r[0] for r in rows], dtype=np.int64), np.vstack([embedding_of(r[1]) for r in rows])

    def fts_ids(self, collection_id: int) -> np.ndarray:
        """Rowids of a collection's FTS table; orphans (no chunk of this collection) as negatives."""
        rows = self.db.execute(
            f"SELECT f.rowid, c.collection_id FROM {fts_table(collection_id)} f LEFT JOIN chunks c ON c.id = f.rowid"
        ).fetchall()
        return np.array(sorted(r[0] if r[1] == collection_id else -r[0] for r in rows), dtype=np.int64)

    def rebuild_fts(self, collection_id: int) -> None:
        """Re-derive the FTS table of a collection from its chunks (orphans go with the old rows)."""
        with self.transaction() as db:
            create_fts(db, collection_id)
            db.execute(f"DELETE FROM {fts_table(collection_id)}")
            rows = db.execute(
                "SELECT id, text, heading_path FROM chunks WHERE collection_id = ?", (collection_id,)
            ).fetchall()
            db.executemany(
                f"INSERT INTO {fts_table(collection_id)}(rowid, body) VALUES (?, ?)",
                [(r[0], fts_body(r[1], json.loads(r[2]))) for r in rows],
            )

    # -- lexical search ---------------------------------------------------------------------------

    def lexical_search(
        self, collection_id: int, question: str, k: int, allowed: Sequence[int] | None = None,
        db: sqlite3.Connection | None = None, budget: int | None = ROW_BUDGET,
    ) -> list[tuple[int, float]]:
        """BM25 over FTS5: (chunk id, score) best first; score is -bm25 (higher is better). A query whose terms
        hold more than `budget` rows between them is asked for its rarest terms (`bounded_stems`); None: whole."""
        stems = query_stems(question)
        if not stems or k <= 0:
            return []
        db = db or self.db
        table = fts_table(collection_id)
        if budget is not None:
            stems = bounded_stems(stems, self.term_frequencies(collection_id, stems, db), budget)
        sql = f"SELECT rowid, -bm25({table}) FROM {table} WHERE {table} MATCH ?"
        args: list[Any] = [or_expression(stems)]
        if allowed is not None:
            if not allowed:
                return []
            # One JSON parameter, not one per id: a filter may allow more ids than SQLite binds variables.
            sql += " AND rowid IN (SELECT value FROM json_each(?))"
            args.append(json.dumps([int(i) for i in allowed]))
        sql += f" ORDER BY bm25({table}) LIMIT ?"
        args.append(k)
        return [(int(r[0]), float(r[1])) for r in db.execute(sql, args)]

    def term_frequencies(
        self, collection_id: int, terms: Sequence[str], db: sqlite3.Connection | None = None
    ) -> dict[str, int]:
        """How many rows of the collection's FTS table hold each term (fts5vocab, which counts a term's postings:
        the cost of a common term, so counts are kept TERM_COUNTS_TTL_S seconds; they only steer `bounded_stems`)."""
        db = db or self.db
        table = fts_table(collection_id)
        now = time.monotonic()
        counts: dict[str, int] = {}
        vocabulary = False
        for term in dict.fromkeys(terms):
            with self._term_counts_lock:
                cached = self._term_counts.get((collection_id, term))
            if cached is not None and now - cached[1] < TERM_COUNTS_TTL_S:
                counts[term] = cached[0]
                continue
            if not vocabulary:  # the connection's own view of the table's terms, made once per connection
                db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{table}_terms USING fts5vocab(main, {table}, 'row')")
                vocabulary = True
            row = db.execute(f"SELECT doc FROM temp.{table}_terms WHERE term = ?", (term,)).fetchone()
            counts[term] = int(row[0]) if row else 0
            with self._term_counts_lock:
                self._term_counts[(collection_id, term)] = (counts[term], now)
                while len(self._term_counts) > TERM_COUNTS_KEPT:  # the oldest go first
                    del self._term_counts[next(iter(self._term_counts))]
        return counts

    # -- change log -------------------------------------------------------------------------------

    def last_seq(self, collection_id: int) -> int:
        """The newest change sequence number of a collection (0 if none), compacted or not."""
        row = self.db.execute(
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM changes WHERE collection_id = ?), 0),"
            " COALESCE((SELECT seq FROM compacted WHERE collection_id = ?), 0))", (collection_id, collection_id),
        ).fetchone()
        return int(row[0])

    def changes_since(self, collection_id: int, seq: int) -> list[tuple[int, int, str]] | None:
        """(seq, chunk id, op) after `seq`, in order; None if some of them were compacted away."""
        with self.snapshot() as db:
            compacted = db.execute("SELECT seq FROM compacted WHERE collection_id = ?", (collection_id,)).fetchone()
            if compacted is not None and seq < compacted[0]:
                return None
            return db.execute(
                "SELECT seq, chunk_id, op FROM changes WHERE collection_id = ? AND seq > ? ORDER BY seq",
                (collection_id, seq),
            ).fetchall()

    def compact_changes(self, collection_id: int, seq: int) -> int:
        """Drop a collection's changes up to `seq` (its saved vector file has them); returns how many went. An
        index behind the last of them can no longer catch up from the log: `changes_since` says so."""
        with self.transaction() as db:
            (last_removed,) = db.execute(
                "SELECT MAX(seq) FROM changes WHERE collection_id = ? AND seq <= ?", (collection_id, seq)
            ).fetchone()
            if last_removed is None:
                return 0
            removed = db.execute("DELETE FROM changes WHERE collection_id = ? AND seq <= ?", (collection_id, seq)).rowcount
            db.execute(
                "INSERT INTO compacted(collection_id, seq) VALUES (?, ?)"
                " ON CONFLICT (collection_id) DO UPDATE SET seq = MAX(seq, excluded.seq)", (collection_id, last_removed),
            )
        return removed

    def counts(self, collection_id: int) -> dict[str, int]:
        """Documents (ok, failed) and chunks in a collection."""
        row = self.db.execute(
            "SELECT SUM(status = 'ok'), SUM(status = 'failed') FROM documents WHERE collection_id = ?",
            (collection_id,),
        ).fetchone()
        chunks = self.db.execute("SELECT COUNT(*) FROM chunks WHERE collection_id = ?", (collection_id,)).fetchone()
        return {"documents": int(row[0] or 0), "failed": int(row[1] or 0), "chunks": int(chunks[0])}
