"""The catalog's SQLite schema: tables, their version, and the per-collection FTS5 tables."""

from __future__ import annotations

import sqlite3

from indexes.lexical import FTS_TOKENIZER

SCHEMA_VERSION = 6  # 6: chunks.embedding float16 (was float32); 5: chunks.locator, chunks.ocr, documents.ocr_pages; 4: compacted (the change log is trimmed); 3: chunks.sentence_vectors; 2: one FTS5 table each


def fts_table(collection_id: int) -> str:
    """The FTS5 table of a collection. One table each, so BM25 needs no join to filter by collection (3x faster)."""
    return f"fts_{int(collection_id)}"


def create_fts(db: sqlite3.Connection, collection_id: int) -> None:
    """Create a collection's FTS5 table if it is missing."""
    db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts_table(collection_id)} USING fts5(body, tokenize='{FTS_TOKENIZER}')")


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: jobs, caches and FTS tables name collections by id
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    embedder TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: citations and links name documents by id
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    title TEXT,
    sha256 TEXT,
    size INTEGER,
    mtime REAL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error TEXT,
    warnings TEXT NOT NULL DEFAULT '[]',
    metadata TEXT NOT NULL DEFAULT '{{}}',
    pages INTEGER,
    text TEXT,
    ocr_pages TEXT NOT NULL DEFAULT '[]',  -- pages whose text came from OCR
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (collection_id, source)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a chunk id cited once must not name other text later
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    collection_id INTEGER NOT NULL,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    embed_text TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    page_start INTEGER,
    page_end INTEGER,
    heading_path TEXT NOT NULL DEFAULT '[]',
    embedding BLOB NOT NULL,  -- float16 (dim), since schema 6; float32 before
    sentence_vectors BLOB,  -- float16 (sentences x dim), from the chunk's own forward pass; NULL if none
    locator TEXT,  -- JSON (indexes/locators.py): page, slide, sheet and rows, chapter; NULL before schema 5
    ocr INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks(document_id);
CREATE INDEX IF NOT EXISTS chunks_by_collection ON chunks(collection_id);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL,
    chunk_id INTEGER NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('add', 'del'))
);
CREATE INDEX IF NOT EXISTS changes_by_collection ON changes(collection_id, seq);
CREATE TABLE IF NOT EXISTS compacted (  -- a collection's changes up to seq are gone: its vector file had them
    collection_id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL
);
"""
