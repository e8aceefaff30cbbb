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
