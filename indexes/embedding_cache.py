"""An on-disk embedding cache, so reruns with other retrieval or answer settings never re-embed a text.

Used by `docqa eval`; it lives here, with the embedders, because it is storage: nothing outside `indexes/`
opens a database."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from indexes.embedders import Embedder, EmbedderIdentity, SpanEmbedder, Spans


class CachedEmbedder:
    """Wraps an Embedder: vectors are keyed by sha256(embedder identity + role + text) in one SQLite file."""

    def __init__(self, inner: Embedder, path: Path) -> None:
        self.inner = inner
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)")
        self._lock = threading.Lock()
        self._salt: bytes | None = None

    @property
    def identity(self) -> EmbedderIdentity:
        """The wrapped embedder's identity: the cache is invisible to the index."""
        return self.inner.identity

    def _key(self, role: str, text: str) -> bytes:
        if self._salt is None:
            self._salt = json.dumps(self.identity.as_dict(), sort_keys=True).encode()
        return hashlib.sha256(self._salt + role.encode() + b"\0" + text.encode("utf-8")).digest()

    def _cached(self, role: str, texts: Sequence[str], embed) -> np.ndarray:
        keys = [self._key(role, t) for t in texts]
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                part = keys[i : i + 500]
                rows = self._db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(part))})", part)
                found.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in rows)
        todo = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in found))
        if todo:
            fresh = embed(todo)
            rows = [(self._key(role, t), np.asarray(v, dtype=np.float32).tobytes()) for t, v in zip(todo, fresh)]
            with self._lock:
                self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
                self._db.commit()
            found.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in rows)
        if not texts:
            return np.zeros((0, self.identity.dim), dtype=np.float32)
        return np.vstack([found[k] for k in keys])

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Document vectors, embedding only texts never seen before."""
        return self._cached("document", list(texts), self.inner.embed_documents)

    def embed_documents_with_spans(
        self, texts: Sequence[str], spans: Sequence[Spans]
    ) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """Passages with their spans' vectors, from the wrapped embedder, uncached: this runs once per scratch
        index (which is itself kept), unlike questions and evidence sentences."""
        if not isinstance(self.inner, SpanEmbedder):
            return self.embed_documents(texts), [None] * len(texts)
        return self.inner.embed_documents_with_spans(texts, spans)

    def embed_query(self, text: str) -> np.ndarray:
        """A query vector, embedded once per text."""
        return self._cached("query", [text], lambda ts: [self.inner.embed_query(t) for t in ts])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts come from the wrapped embedder (they are cheap)."""
        return self.inner.count_tokens(texts)
