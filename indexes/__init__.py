"""Catalog (SQLite + FTS5), vectors (FAISS) and embedders: everything ingest time and query time must agree on."""
