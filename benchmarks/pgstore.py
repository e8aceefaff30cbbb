"""Shared by the benchmarks: a store URL from `--store`, where `postgres` means a throwaway PostgreSQL 16 with
pgvector (the `pgserver` wheel: initdb in a short temporary directory under /tmp, listening on a unix socket
only, stopped and deleted at exit) and a fresh database on it; any other value is used as it is.

The server keeps PostgreSQL's default settings (shared_buffers 128MB, maintenance_work_mem 64MB, fsync on),
as the `pgvector/pgvector:pg16` image of docker-compose.yml does, so figures are not flattered by tuning.
"""

from __future__ import annotations

import tempfile
import uuid
from contextlib import contextmanager
from typing import Iterator

import psycopg


def fresh_database(admin_url: str, prefix: str = "bench") -> str:
    """A new, empty database on the server of `admin_url` (a `…/postgres?host=…` URL); returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    head, sep, query = admin_url.partition("?")
    return head.rsplit("/", 1)[0] + f"/{name}" + sep + query


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server; yields its admin URL (database `postgres`)."""
    import pgserver

    root = tempfile.mkdtemp(prefix="pg", dir="/tmp")  # unix socket paths must stay under ~100 characters
    server = pgserver.get_server(root, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@contextmanager
def store_url(spec: str | None, prefix: str = "bench") -> Iterator[tuple[str | None, str | None]]:
    """(store URL, admin URL) for `--store`: None (the embedded store), `postgres` (a throwaway server), or a URL
    (used as it is; admin URL None, so callers cannot make more databases on it)."""
    if spec is None:
        yield None, None
    elif spec == "postgres":
        with postgres_server() as admin:
            yield fresh_database(admin, prefix), admin
    else:
        yield spec, None


def is_postgres(url: str | None) -> bool:
    """Whether a store URL names PostgreSQL."""
    return bool(url) and url.split(":", 1)[0].split("+")[0] in ("postgresql", "postgres")


@contextmanager
def hnsw_after_load(store, collection, maintenance_work_mem: str = "1GB") -> Iterator[dict[str, float]]:
    """Bulk loading into a PostgresStore collection: its HNSW index is dropped for the body of the `with`, then
    created again exactly as the store defines it (`PostgresStore._create_hnsw`), with maintenance_work_mem
    raised for that one statement so pgvector builds the graph in memory (at 64MB, the default, 100k × 384
    floats no longer fit and it builds on disk, far slower). Yields a dict that gets `index_s`. The store
    must have a statement_timeout long enough for the build."""
    import time

    from indexes.postgres import hnsw_index

    with store.connection() as conn:
        conn.execute(f"DROP INDEX IF EXISTS {hnsw_index(collection.id)}")
    timings: dict[str, float] = {}
    yield timings
    started = time.perf_counter()
    with store.connection() as conn:
        conn.execute(f"SET LOCAL maintenance_work_mem = '{maintenance_work_mem}'")
        store._create_hnsw(conn, collection)
    timings["index_s"] = time.perf_counter() - started


def vacuum_analyze(url: str) -> float:
    """VACUUM ANALYZE the whole database (what autovacuum does soon after a bulk load: planner statistics, and
    the visibility map that lets index-only scans skip the heap); returns the seconds it took."""
    import time

    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started
