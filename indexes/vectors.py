"""The FAISS side: one inner-product index per collection, ids = chunk rowids, derived from the catalog.

The file on disk holds the index and the catalog change sequence it reflects, written atomically
(temp file + os.replace), so a reader never sees half a file and a crash loses nothing: on open the
index catches up from the catalog's change log. Once saved, the changes it reflects leave the log; an index
left behind them (an older file, another process's copy) is reloaded or rebuilt instead.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import threading
from pathlib import Path
from typing import Sequence

import faiss
import numpy as np

from indexes.catalog import Catalog
from indexes.errors import StorageError

_MAGIC = b"DOCQAVEC"


class VectorIndex:
    """A flat inner-product FAISS index over normalised vectors, keyed by chunk id, with a catalog sequence."""

    def __init__(self, dim: int) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be > 0, got {dim}")
        self.dim = dim
        self.seq = 0
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        # remove_ids scans the whole flat index, so only call it for ids really present.
        self._ids: set[int] = set()
        # Searches and updates must not interleave inside FAISS; updates are short (one document).
        self._lock = threading.Lock()

    @property
    def ntotal(self) -> int:
        """How many vectors the index holds."""
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        """Every chunk id in the index, ascending."""
        with self._lock:
            return np.sort(faiss.vector_to_array(self._index.id_map).astype(np.int64))

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Add vectors under the given chunk ids (ids already present are replaced)."""
        ids_array = np.asarray(ids, dtype=np.int64)
        if len(ids_array) == 0:
            return
        matrix = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids_array), -1)
        if matrix.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {matrix.shape[1]}, index has {self.dim}")
        with self._lock:
            present = [i for i in ids_array.tolist() if i in self._ids]
            if present:
                self._index.remove_ids(faiss.IDSelectorBatch(np.asarray(present, dtype=np.int64)))
            self._index.add_with_ids(matrix, ids_array)
            self._ids.update(ids_array.tolist())

    def remove(self, ids: Sequence[int]) -> None:
        """Remove the given chunk ids (missing ones are ignored)."""
        with self._lock:
            present = [i for i in np.asarray(ids, dtype=np.int64).tolist() if i in self._ids]
            if present:
                self._index.remove_ids(faiss.IDSelectorBatch(np.asarray(present, dtype=np.int64)))
                self._ids.difference_update(present)

    def search(self, query: np.ndarray, k: int, allowed: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """(chunk id, cosine) best first; `allowed` restricts the search to those ids."""
        if k <= 0 or self.ntotal == 0 or (allowed is not None and len(allowed) == 0):
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
        # One query scans in one thread: an OpenMP team per query spins against torch's threads, and requests
        # run in parallel anyway. OpenMP keeps this setting per thread, so it is set where the search runs
        # (/v1/search p50 at 100k chunks 27.0 -> 18.8 ms, benchmarks/query.py).
        faiss.omp_set_num_threads(1)
        with self._lock:
            scores, ids = self._index.search(q, min(k, self.ntotal), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    # -- persistence ------------------------------------------------------------------------------

    def save(self, path: Path) -> int:
        """Write index + sequence to `path` atomically; returns the sequence written."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            blob = faiss.serialize_index(self._index).tobytes()
            seq = self.seq
            header = json.dumps({"dim": self.dim, "seq": seq}).encode()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_MAGIC + struct.pack("<I", len(header)) + header + blob)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise StorageError(f"cannot write vector index {path}: {exc}") from exc
        return seq

    @classmethod
    def load(cls, path: Path) -> "VectorIndex":
        """Read an index written by `save`."""
        data = Path(path).read_bytes()
        if not data.startswith(_MAGIC):
            raise ValueError(f"{path} is not a docqa vector index")
        (length,) = struct.unpack_from("<I", data, len(_MAGIC))
        start = len(_MAGIC) + 4
        header = json.loads(data[start : start + length])
        index = cls(header["dim"])
        index._index = faiss.deserialize_index(np.frombuffer(data[start + length :], dtype=np.uint8))
        index._ids = set(faiss.vector_to_array(index._index.id_map).tolist())
        index.seq = int(header["seq"])
        return index

    # -- deriving from the catalog ----------------------------------------------------------------

    def catch_up(self, catalog: Catalog, collection_id: int) -> int | None:
        """Apply the catalog's changes after `self.seq`; returns how many were applied, or None (and applies
        none) if the log was compacted past this index: only a newer file or a rebuild brings it up to date."""
        changes = catalog.changes_since(collection_id, self.seq)
        if changes is None:
            return None
        if not changes:
            return 0
        last_op: dict[int, str] = {}
        for _, chunk_id, op in changes:
            last_op[chunk_id] = op
        self.remove([c for c, op in last_op.items() if op == "del"])
        ids, matrix = catalog.embeddings([c for c, op in last_op.items() if op == "add"])
        self.add(ids, matrix)
        self.seq = changes[-1][0]
        return len(changes)

    @classmethod
    def rebuild(cls, catalog: Catalog, collection_id: int, dim: int) -> "VectorIndex":
        """A fresh index from the vectors stored in the catalog."""
        index = cls(dim)
        with catalog.snapshot():  # the vectors as of the sequence, whatever commits (or compacts) meanwhile
            seq = catalog.last_seq(collection_id)
            ids, matrix = catalog.embeddings(collection_id=collection_id)
        index.add(ids, matrix)
        index.seq = seq
        return index
