"""Opening a store by URL: the embedded store by default, PostgreSQL by `postgresql://…`, others by plugin.

Backends register under the `docqa.stores` entry-point group, keyed by URL scheme, exactly as a third-party
package would (docqa's own two are declared in its pyproject.toml; `indexes.plugins` loads both kinds). A
factory takes `(url, data_dir, embedders, options)` and returns a `Store`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from indexes import plugins
from indexes.errors import InvalidInput
from indexes.store import Embedders, Store

GROUP = plugins.STORES


@dataclass(frozen=True)
class StoreOptions:
    """Backend tuning that is not part of the URL: the server backends' pool and timeouts, pgvector's HNSW
    search width, and the embedded store's vector index (indexes/vectors.py IndexPolicy) and BM25 engine
    (indexes/lexical_index.py LexicalPolicy)."""

    pool_size: int = 8
    connect_timeout: float = 5.0
    statement_timeout: float = 30.0
    ef_search: int = 100
    ivf_threshold: int = 300_000  # chunks from which the embedded store's index is IVF, not flat
    ivf_quantiser: str = "sq8"  # sq8, fp16 or pq
    ivf_recall: float = 0.95  # recall@10 vs exact that the IVF's nprobe is chosen for
    mmap: bool = False  # memory-map saved vector files (read-only serving) until the collection changes
    lexical: str = "auto"  # BM25 by fts5, by tantivy, or auto: tantivy from lexical_threshold chunks (lexical_index.py)
    lexical_threshold: int = 100_000


StoreFactory = Callable[[str, Path, Embedders, StoreOptions], Store]


def embedded(url: str, data_dir: Path, embedders: Embedders, options: StoreOptions) -> Store:
    """`sqlite:///relative/dir` or `sqlite:////absolute/dir` (as SQLAlchemy writes them); no URL: the data dir."""
    from indexes.embedded import EmbeddedStore

    path = urlsplit(url).path[1:] if url else ""
    return EmbeddedStore(Path(path) if path else data_dir, embedders=embedders, options=options)


def postgres(url: str, data_dir: Path, embedders: Embedders, options: StoreOptions) -> Store:
    """`postgresql://user:password@host:5432/database`."""
    from indexes.postgres import PostgresStore

    return PostgresStore(url, embedders=embedders, options=options)


def factories() -> dict[str, StoreFactory]:
    """Every registered backend by URL scheme."""
    return plugins.load(GROUP)


def open_store(url: str | None, data_dir: Path | str = "data", *, embedders: Embedders | None = None,
               options: StoreOptions | None = None) -> Store:
    """The store a URL names; no URL is the embedded store under `data_dir`, exactly as before stores had URLs."""
    embedders = embedders or Embedders()
    scheme = urlsplit(url).scheme.split("+")[0] if url else "sqlite"
    registered = factories()
    if scheme not in registered:
        raise InvalidInput(f"no store backend for {scheme!r} URLs; registered: {sorted(registered)}")
    return registered[scheme](url or "", Path(data_dir), embedders, options or StoreOptions())


def redacted(url: str) -> str:
    """A store URL without its password, for logs and status output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)
