"""Real PostgreSQL 16 with pgvector for the tests, from the `pgserver` wheel (no Docker engine here).

One server per test session; each test gets a database of its own. A test that must take the server down
(an outage) starts one of its own with `PostgresCluster` and stops and starts it with `pg_ctl`.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg

PGSERVER_BIN = Path(__import__("pgserver").__file__).parent / "pginstall" / "bin"


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
    """A PostgreSQL server of our own (initdb + pg_ctl from pgserver's binaries) that can be stopped and started."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = Path(root)
        self.pgdata = self.root / "pgdata"
        self.port = port
        self.log = self.root / "postgres.log"

    def init(self) -> "PostgresCluster":
        subprocess.run([str(PGSERVER_BIN / "initdb"), "-D", str(self.pgdata), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8"], check=True, capture_output=True)
        return self

    def start(self) -> None:
        options = f"-k {self.root} -p {self.port} -c listen_addresses=''"
        subprocess.run([str(PGSERVER_BIN / "pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log), "-o", options,
                        "-w", "start"], check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run([str(PGSERVER_BIN / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"],
                       check=False, capture_output=True)

    def url(self, database: str = "postgres") -> str:
        return database_url(self.root, database, self.port)
