"""The FAISS side: one inner-product index per collection, ids = chunk rowids, derived from the catalog.

The file on disk holds the index and the catalog change sequence it reflects, written atomically
(temp file + os.replace), so a reader never sees half a file and a crash loses nothing: on open the
index catches up from the catalog's change log. Once saved, the changes it reflects leave the log; an index
left behind them (an older file, another process's copy) is reloaded or rebuilt instead.

The index's type follows the collection's size (`IndexPolicy`): exact (flat) while small, and from
`threshold` chunks on an IVF index with a scalar quantiser (SQ8 by default; fp16 or PQ on request),
trained on a sample of the stored embeddings, with nlist = 4·sqrt(n) lists and four times the smallest nprobe whose
recall@10 against exact search, measured on stored vectors as queries, reaches the policy's target (the margin
real questions need, `_calibrate`). The
choice and its parameters (`IndexParams`) are recorded in the file, so a restart never retrains.

File format: the serialized FAISS index first, then a JSON header, its length (u32) and `DOCQAIX2`, so
`faiss.read_index(path, IO_FLAG_MMAP)` can map the file as it is (FAISS ignores what follows the index).
Files written before it (`DOCQAVEC`, header, index) still load.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import faiss
import numpy as np

from indexes.catalog import Catalog
from indexes.errors import InvalidInput, StorageError

_MAGIC = b"DOCQAVEC"  # files written before the trailer: magic, header length, header, index
_TRAILER = b"DOCQAIX2"  # index, header, header length, magic
KINDS = ("auto", "flat", "ivf")
QUANTISERS = ("sq8", "fp16", "pq")
CALIBRATION_QUERIES = 200  # stored vectors used as queries to choose nprobe
MARGIN = 4  # nprobe = this times the fewest lists stored-vector queries need (real questions need more)
BATCH = 65_536  # vectors read from the catalog at a time when building
EMBEDDINGS = "float16"  # what the catalog's vectors are (schema 6); a file built from others is rebuilt


@dataclass(frozen=True)
class IndexPolicy:
    """How a collection's index follows its size; from StoreOptions (DOCQA_STORE__IVF_*)."""

    ivf_threshold: int = 300_000  # chunks from which `auto` builds an IVF index
    quantiser: str = "sq8"
    recall: float = 0.95  # recall@10 against exact search that nprobe is chosen for
    mmap: bool = False  # map saved files read-only instead of reading them (until the collection changes)

    def wanted(self, params: "IndexParams", n: int) -> "IndexParams | None":
        """The index an `auto` collection of n chunks should have instead of `params`, or None if it fits. Hysteresis
        keeps one crossing from flapping: back to flat below half the threshold, retrained past 4x its training."""
        if params.chosen != "auto":
            return None
        if params.kind == "flat":
            return IndexParams("ivf", quantiser=self.quantiser) if n >= self.ivf_threshold else None
        if n < self.ivf_threshold // 2:
            return IndexParams("flat")
        if n > 4 * params.trained_on:
            return IndexParams("ivf", quantiser=params.quantiser)
        return None

    def for_size(self, n: int) -> "IndexParams":
        """What `auto` builds for n chunks."""
        return IndexParams("ivf", quantiser=self.quantiser) if n >= self.ivf_threshold else IndexParams("flat")


@dataclass(frozen=True)
class IndexParams:
    """What an index is: `flat`, or `ivf` with its lists, probes, quantiser, training size and measured recall.
    `chosen` is what asked for it: `auto` (the policy may switch it as the collection grows or shrinks) or the
    kind pinned by `docqa reindex --index flat|ivf`. Zeros mean "choose" when building."""

    kind: str = "flat"
    nlist: int = 0
    nprobe: int = 0
    quantiser: str = ""
    trained_on: int = 0
    recall: float | None = None
    chosen: str = "auto"

    def __post_init__(self) -> None:
        if self.kind not in ("flat", "ivf"):
            raise InvalidInput(f"index kind must be flat or ivf, got {self.kind!r}")
        if self.kind == "ivf" and self.quantiser not in QUANTISERS:
            raise InvalidInput(f"quantiser must be one of {', '.join(QUANTISERS)}, got {self.quantiser!r}")
        if self.chosen not in KINDS:
            raise InvalidInput(f"index choice must be one of {', '.join(KINDS)}, got {self.chosen!r}")
        if self.nlist < 0 or self.nprobe < 0:
            raise InvalidInput("nlist and nprobe must be positive")

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if self.kind == "ivf" or k in ("kind", "chosen")}

    @classmethod
    def from_dict(cls, data: dict) -> "IndexParams":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def nlist_for(n: int) -> int:
    """Inverted lists for n vectors: 4·sqrt(n), with at least 39 training vectors per list (FAISS's floor)."""
    return max(1, min(int(round(4 * math.sqrt(n))), n // 39))


class VectorIndex:
    """An inner-product FAISS index over normalised vectors, keyed by chunk id, with a catalog sequence:
    flat (exact) or IVF (trained, see `build`)."""

    def __init__(self, dim: int, params: IndexParams | None = None, index: faiss.Index | None = None) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be > 0, got {dim}")
        self.dim = dim
        self.seq = 0
        self.params = params or IndexParams()
        if index is None and self.params.kind != "flat":
            raise ValueError("an IVF index is built by VectorIndex.build or loaded")
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.mapped = False  # memory-mapped from its file: read-only
        self.embeddings = EMBEDDINGS  # the catalog vectors it was built from (older files: float32)
        # remove_ids scans the whole flat index, so only call it for ids really present.
        self._ids: set[int] = set(self._stored_ids().tolist())
        # Searches and updates must not interleave inside FAISS; updates are short (one document).
        self._lock = threading.Lock()

    @property
    def ntotal(self) -> int:
        """How many vectors the index holds."""
        return int(self._index.ntotal)

    @property
    def ivf(self) -> bool:
        return self.params.kind == "ivf"

    def _stored_ids(self) -> np.ndarray:
        if not self.ivf:
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        parts = [ids for ids, _ in self._all_lists(codes=False)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def ids(self) -> np.ndarray:
        """Every chunk id in the index, ascending."""
        with self._lock:
            return np.sort(self._stored_ids())

    def _remove_present(self, present: list[int]) -> None:
        ids = np.asarray(present, dtype=np.int64)
        # the IVF's hash-table direct map removes by an explicit array; the flat index by a batch (bloom + set)
        selector = faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids)) if self.ivf else faiss.IDSelectorBatch(ids)
        self._index.remove_ids(selector)

    def _writable(self) -> None:
        if self.mapped:
            raise StorageError("a memory-mapped vector index is read-only; load it to change it")

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Add vectors under the given chunk ids (ids already present are replaced)."""
        ids_array = np.asarray(ids, dtype=np.int64)
        if len(ids_array) == 0:
            return
        matrix = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids_array), -1)
        if matrix.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {matrix.shape[1]}, index has {self.dim}")
        with self._lock:
            self._writable()
            present = [i for i in ids_array.tolist() if i in self._ids]
            if present:
                self._remove_present(present)
            self._index.add_with_ids(matrix, ids_array)
            self._ids.update(ids_array.tolist())

    def remove(self, ids: Sequence[int]) -> None:
        """Remove the given chunk ids (missing ones are ignored)."""
        with self._lock:
            present = [i for i in np.asarray(ids, dtype=np.int64).tolist() if i in self._ids]
            if present:
                self._writable()
                self._remove_present(present)
                self._ids.difference_update(present)

    def search(self, query: np.ndarray, k: int, allowed: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """(chunk id, cosine) best first; `allowed` restricts the search to those ids. An IVF index's scores are
        its quantiser's approximations; a filter letting few ids through probes more lists, up to all of them."""
        if k <= 0 or self.ntotal == 0 or (allowed is not None and len(allowed) == 0):
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        sel = None if allowed is None else faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        if self.ivf:
            nprobe = self.params.nprobe
            if allowed is not None:  # a tenth of the ids let through: ten times the lists, so as many candidates
                nprobe = math.ceil(nprobe * self.ntotal / max(len(allowed), 1))
            params = faiss.SearchParametersIVF(nprobe=min(nprobe, self.params.nlist), sel=sel)
        else:
            params = None if sel is None else faiss.SearchParameters(sel=sel)
        # One query scans in one thread: an OpenMP team per query spins against torch's threads, and requests
        # run in parallel anyway. OpenMP keeps this setting per thread, so it is set where the search runs
        # (/v1/search p50 at 100k chunks 27.0 -> 18.8 ms, benchmarks/query.py).
        faiss.omp_set_num_threads(1)
        with self._lock:
            scores, ids = self._index.search(q, min(k, self.ntotal), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def flat_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """A flat index's (ids, vectors) in storage order, exactly as held."""
        if self.ivf:
            raise ValueError("an IVF index holds codes: compare them with `codes_for`")
        with self._lock:
            ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            codes = faiss.vector_to_array(faiss.downcast_index(self._index.index).codes)
        return ids, codes.view(np.float32).reshape(len(ids), self.dim)

    def codes_for(self, vectors: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        """The codes an IVF index stores for these vectors in these lists (encoding is deterministic, so a
        stored code equals the code of its stored embedding, byte for byte)."""
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        codes = np.zeros((len(x), self._index.code_size), dtype=np.uint8)
        lists = np.ascontiguousarray(list_nos, dtype=np.int64)
        self._index.encode_vectors(len(x), faiss.swig_ptr(x), faiss.swig_ptr(lists), faiss.swig_ptr(codes), False)
        return codes

    def disagreeing(self, batches: Iterator[tuple[np.ndarray, np.ndarray]]) -> list[int]:
        """Ids whose held vector differs from the stored embedding given in `batches` (ids absent from the index
        are left to the id comparison): a flat index's exactly, an IVF index's code against the code of the
        embedding re-encoded in the same list, so as exact for a quantised index as for a flat one."""
        if self.ivf:
            parts = [(ids, np.full(len(ids), n, dtype=np.int64), codes) for n, (ids, codes) in enumerate(self._all_lists())]
            held_ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
            held_lists = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
            held = np.concatenate([p[2] for p in parts]) if parts else np.zeros((0, 0), dtype=np.uint8)
        else:
            held_ids, held = self.flat_vectors()
            held_lists = None
        order = np.argsort(held_ids)
        held_ids = held_ids[order]
        wrong: list[int] = []
        for ids, matrix in batches:
            pos = np.minimum(np.searchsorted(held_ids, ids), max(len(held_ids) - 1, 0))
            found = (held_ids[pos] == ids) if len(held_ids) else np.zeros(len(ids), dtype=bool)
            if not found.any() or matrix.shape[1] != self.dim:
                continue
            ids, matrix, rows = ids[found], matrix[found], order[pos[found]]
            if held_lists is None:
                differ = np.any(held[rows] != matrix, axis=1)
            else:
                differ = np.any(held[rows] != self.codes_for(matrix, held_lists[rows]), axis=1)
            wrong += ids[differ].tolist()
        return wrong

    def _all_lists(self, codes: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Every inverted list's ids and (unless `codes` is False: ids are all a load needs) codes, in order,
        empty ones included (so the position is the list number)."""
        invlists = self._index.invlists
        no_codes = np.zeros((0, invlists.code_size), dtype=np.uint8)
        for list_no in range(self._index.nlist):
            size = invlists.list_size(list_no)
            if not size:
                yield np.zeros(0, dtype=np.int64), no_codes if codes else None
                continue
            ids = faiss.rev_swig_ptr(invlists.get_ids(list_no), size).astype(np.int64)
            held = faiss.rev_swig_ptr(invlists.get_codes(list_no), size * invlists.code_size).copy() if codes else None
            yield ids, held.reshape(size, invlists.code_size) if held is not None else None

    # -- persistence ------------------------------------------------------------------------------

    def save(self, path: Path) -> int:
        """Write index + sequence + parameters to `path` atomically; returns the sequence written."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            blob = faiss.serialize_index(self._index).tobytes()
            seq = self.seq
            header = json.dumps({"dim": self.dim, "seq": seq, "index": self.params.as_dict(),
                                 "embeddings": self.embeddings}).encode()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
                fh.write(header + struct.pack("<I", len(header)) + _TRAILER)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise StorageError(f"cannot write vector index {path}: {exc}") from exc
        return seq

    @staticmethod
    def read_header(path: Path) -> dict:
        """The JSON header of a saved index (dim, seq, index parameters), without reading the index."""
        try:
            return VectorIndex._read_header(path)
        except (struct.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not a docqa vector index ({exc})") from None

    @staticmethod
    def _read_header(path: Path) -> dict:
        with open(path, "rb") as fh:
            start = fh.read(len(_MAGIC) + 4)
            if start[: len(_MAGIC)] == _MAGIC:  # the format before the trailer
                (length,) = struct.unpack_from("<I", start, len(_MAGIC))
                return json.loads(fh.read(length))
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if size < len(_TRAILER) + 4:
                raise ValueError(f"{path} is not a docqa vector index")
            fh.seek(size - len(_TRAILER) - 4)
            tail = fh.read(len(_TRAILER) + 4)
            if tail[4:] != _TRAILER:
                raise ValueError(f"{path} is not a docqa vector index")
            (length,) = struct.unpack_from("<I", tail)
            fh.seek(size - len(_TRAILER) - 4 - length)
            return json.loads(fh.read(length))

    @classmethod
    def load(cls, path: Path, mmap: bool = False) -> "VectorIndex":
        """Read an index written by `save` (or by docqa before the trailer); `mmap` maps it read-only."""
        path = Path(path)
        header = cls.read_header(path)
        params = IndexParams.from_dict(header.get("index", {"kind": "flat"}))
        if _is_old(path):
            data = path.read_bytes()
            (length,) = struct.unpack_from("<I", data, len(_MAGIC))
            raw = faiss.deserialize_index(np.frombuffer(data[len(_MAGIC) + 4 + length :], dtype=np.uint8))
            mmap = False  # the old format is not mappable: FAISS would read our header as its own
        else:
            raw = faiss.read_index(str(path), faiss.IO_FLAG_MMAP if mmap else 0)
        index = cls(int(header["dim"]), params, raw)  # read_index hands back the concrete class
        index.mapped = mmap
        index.seq = int(header["seq"])
        index.embeddings = header.get("embeddings", "float32")
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
    def rebuild(cls, catalog: Catalog, collection_id: int, dim: int, params: IndexParams | None = None,
                policy: IndexPolicy | None = None) -> "VectorIndex":
        """A fresh index from the vectors stored in the catalog: `params` (zeros chosen), or what the policy
        builds for the collection's size."""
        policy = policy or IndexPolicy()
        with catalog.snapshot():  # the vectors as of the sequence, whatever commits (or compacts) meanwhile
            seq = catalog.last_seq(collection_id)
            chunk_ids = catalog.chunk_ids(collection_id)
            params = params or policy.for_size(len(chunk_ids))
            if params.kind == "ivf" and len(chunk_ids) < 39:
                raise InvalidInput(f"an IVF index needs at least 39 chunks to train on, the collection has {len(chunk_ids)}")
            if params.kind == "flat":
                index = cls(dim, params)
                for ids, matrix in catalog.embedding_batches(collection_id, BATCH):
                    index.add(ids, matrix)
            else:
                index = cls._build_ivf(catalog, collection_id, dim, params, chunk_ids, policy.recall)
        index.seq = seq
        return index

    @classmethod
    def _build_ivf(cls, catalog: Catalog, collection_id: int, dim: int, params: IndexParams, chunk_ids: np.ndarray,
                   recall: float) -> "VectorIndex":
        """Train on a sample, add every stored vector, then choose nprobe (unless given) on stored queries."""
        n = len(chunk_ids)
        nlist = params.nlist or nlist_for(n)
        rng = np.random.default_rng(0)  # the same catalog trains the same index
        sample_ids = np.sort(rng.choice(chunk_ids, size=min(n, max(64 * nlist, 10_000)), replace=False))
        _, sample = catalog.embeddings(sample_ids.tolist())
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        raw = _ivf(dim, nlist, params.quantiser)
        raw.train(sample)
        raw.set_direct_map_type(faiss.DirectMap.Hashtable)  # remove_ids and lookups by chunk id
        index = cls(dim, replace(params, nlist=nlist, nprobe=params.nprobe or 1, trained_on=n), raw)
        queries = sample[rng.choice(len(sample), size=min(CALIBRATION_QUERIES, len(sample)), replace=False)]
        exact = _TopK(queries, 11)
        for ids, matrix in catalog.embedding_batches(collection_id, BATCH):
            index.add(ids, matrix)
            exact.merge(ids, matrix)
        nprobe, measured = _calibrate(index, queries, exact.ids, recall, params.nprobe)
        index.params = replace(index.params, nprobe=nprobe, recall=round(measured, 4))
        return index


def _is_old(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(_MAGIC)) == _MAGIC


def _ivf(dim: int, nlist: int, quantiser: str) -> faiss.IndexIVF:
    coarse = faiss.IndexFlatIP(dim)
    if quantiser == "pq":
        m = next(m for m in (dim // 8, dim // 4, dim // 2, dim) if m and dim % m == 0)  # 8 dims a byte
        index = faiss.IndexIVFPQ(coarse, dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
    else:
        kind = faiss.ScalarQuantizer.QT_8bit if quantiser == "sq8" else faiss.ScalarQuantizer.QT_fp16
        index = faiss.IndexIVFScalarQuantizer(coarse, dim, nlist, kind, faiss.METRIC_INNER_PRODUCT)
    return index  # the Python wrapper keeps `coarse` alive with it


class _TopK:
    """Exact top-k inner products of a few queries over vectors seen in batches."""

    def __init__(self, queries: np.ndarray, k: int) -> None:
        self.queries, self.k = queries, k
        self.ids = np.full((len(queries), 0), -1, dtype=np.int64)
        self.scores = np.zeros((len(queries), 0), dtype=np.float32)

    def merge(self, ids: np.ndarray, matrix: np.ndarray) -> None:
        scores = np.concatenate([self.scores, self.queries @ matrix.T], axis=1)
        all_ids = np.concatenate([self.ids, np.broadcast_to(ids, (len(self.queries), len(ids)))], axis=1)
        top = np.argsort(-scores, axis=1, kind="stable")[:, : self.k]
        self.scores = np.take_along_axis(scores, top, axis=1)
        self.ids = np.take_along_axis(all_ids, top, axis=1)


def _calibrate(index: VectorIndex, queries: np.ndarray, exact: np.ndarray, target: float,
               fixed: int) -> tuple[int, float]:
    """MARGIN times the smallest nprobe (doubling) whose recall@10 reaches `target` on stored vectors as queries,
    and the recall there; `fixed` is measured only. Each query is a stored vector, so its own id is left out of
    both rankings. The margin is for real questions, which lie farther from every passage than passages from each
    other: on 3000 real MiniLM passages (76 lists) stored-vector queries reached recall .942 / .975 at nprobe
    4 / 8, 200 SQuAD questions .892 / .956 / .982 at 4 / 8 / 16; on 300k vectors around them (2191 lists) stored
    ones .937 / .969 at 1 / 2, the questions .826 / .912 / .946 at 2 / 4 / 8 (docs/quality.md)."""

    def recall(nprobe: int) -> float:
        _, found = index._index.search(queries, 11, params=faiss.SearchParametersIVF(nprobe=nprobe))
        hits = 0
        for truth, got in zip(exact, found):
            self_id = truth[0]
            hits += len(set(truth[truth != self_id][:10].tolist()) & set(got[got != self_id][:10].tolist()))
        return hits / (10 * len(queries))

    nlist = index.params.nlist
    if fixed:
        return fixed, recall(min(fixed, nlist))
    nprobe, measured = 1, recall(1)
    while measured < target and nprobe < nlist:
        nprobe = min(nprobe * 2, nlist)
        measured = recall(nprobe)
    nprobe = min(nprobe * MARGIN, nlist)
    return nprobe, recall(nprobe)
