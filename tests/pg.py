"""Real PostgreSQL 16 with pgvector for the tests, from the `pgserver` wheel (no Docker engine here).

One server per test session; each test gets a database of its own. A test that must take the server down
(an outage) starts one of its own with `PostgresCluster`, and stops and starts it.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg

def database_url(socket_dir: Path | str, database: str, port: int = 5432) -> str:
    """A URL for a database on a server listening on a unix socket in `socket_dir`."""
    return f"postgresql://postgres@/{database}?host={quote(str(socket_dir))}&port={port}"


def create_database(admin_url: str, prefix: str = "t") -> str:
    """A fresh, empty database on the server of `admin_url`; returns its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(admin_url: str, name: str) -> None:
    """Drop a database, disconnecting whoever still uses it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PostgresCluster:
    """A PostgreSQL server of a test's own (pgserver's, so it also runs as root) that can be stopped and started."""

    def __init__(self, root: Path) -> None:
        import pgserver

        self.pgdata = Path(root) / "pgdata"
        self.server = pgserver.get_server(self.pgdata, cleanup_mode=None)

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as when a database host goes away."""
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def url(self) -> str:
        return self.server.get_uri()
