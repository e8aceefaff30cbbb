"""BM25 by tantivy for big collections: a per-collection index under `<data dir>/lexical/<collection id>/`, derived
from the catalog's FTS rows exactly as the vector file is derived from the stored embeddings.

FTS5 scores every row holding any of a question's terms, so at a million chunks a question of common words costs
hundreds of milliseconds (indexes/lexical.py, ROW_BUDGET). Tantivy (a Rust engine like Lucene) skips the rows
that cannot reach the top k (block-max WAND): the same questions, whole, in a few milliseconds (docs/quality.md).
It indexes the FTS rows as they are (already folded and stemmed, `fts_body`), split on whitespace, so both
engines see the same terms; its BM25 differs in two details (idf ln(1 + (N-n+.5)/(n+.5)), lengths kept in one
byte), so rankings agree closely, not exactly.

FTS5 stays the source of truth and the fallback: the index records the change-log sequence it holds (a small
file written after each commit), catches up from `Catalog.changes_since` at `sync` (after a batch, at start and
shutdown; by deleting each changed chunk and adding it again from its FTS row if it still has one, so applying
a change twice is harmless), and serves a search only when it holds exactly the catalog's last change. A search
meanwhile, a missing or unreadable index, or one left behind a compacted log all fall back to FTS5 (and `sync`
rebuilds the index); a process killed between the catalog's commit and tantivy's loses nothing. One process
writes at a time (tantivy's writer lock, taken only while catching up): one that finds it taken skips, and the
holder catches up for everyone.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import tantivy

from indexes.catalog import Catalog
from indexes.errors import InvalidInput, StorageError
from indexes.lexical import query_stems
from indexes.schema import fts_table
from indexes.store import CheckReport

log = logging.getLogger("docqa.indexes")

ENGINES = ("auto", "fts5", "tantivy")
SEQ_FILE = "docqa-seq.json"  # {"seq": N}: the change the committed index holds, written after each commit
CATCH_UP_HEAP = 50_000_000  # the writer's memory while catching up (tantivy's floor is 15 MB a thread)
BUILD_HEAP = 256_000_000  # and while building from every FTS row (fewer segments to merge)
READ_BATCH = 500  # FTS rows read per query while catching up
RECHECK_S = 10.0  # how long "no index on disk" is believed before looking again (another process may build one)


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("id", indexed=True, fast=True)  # the chunk id: deleted by, filtered on, returned
    builder.add_text_field("body", stored=False, tokenizer_name="whitespace", index_option="freq")
    return builder.build()


SCHEMA = _schema()


@dataclass(frozen=True)
class LexicalPolicy:
    """Which engine ranks a collection's BM25 (StoreOptions.lexical, DOCQA_STORE__LEXICAL): `fts5` always,
    `tantivy` always, or `auto`: tantivy from `threshold` chunks (dropped again below half of it)."""

    engine: str = "auto"
    threshold: int = 100_000

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise InvalidInput(f"the lexical engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")

    def wanted(self, chunks: int, exists: bool) -> bool:
        """Whether a collection of `chunks` chunks keeps a tantivy index (`exists`: it has one now)."""
        if self.engine != "auto":
            return self.engine == "tantivy"
        return chunks >= (self.threshold // 2 if exists else self.threshold)


class WriterBusy(Exception):
    """Another process (or thread) holds the index's writer: it catches up, this one need not."""


class TantivyIndex:
    """One collection's tantivy index and the change sequence it holds, as this process last read them."""

    def __init__(self, path: Path, index: tantivy.Index, seq: int) -> None:
        self.path = path
        self.index = index
        self._stamp = _stamp(path / SEQ_FILE)
        self._state = (seq, index.searcher())  # swapped whole, so a search never pairs one's seq with another's
        self._write_lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> "TantivyIndex":
        """The index saved at `path`; raises (any exception) if it is missing or cannot be read."""
        seq = _read_seq(path)  # first: the committed index is never behind the sequence it records
        index = tantivy.Index(SCHEMA, path=str(path), reuse=True)
        index.config_reader("Manual")
        return cls(path, index, seq)

    @classmethod
    def create(cls, path: Path) -> "TantivyIndex":
        """A new empty index at `path` (whatever was there is removed), holding change 0."""
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        index = tantivy.Index(SCHEMA, path=str(path), reuse=False)
        index.config_reader("Manual")
        _write_seq(path, 0)
        return cls(path, index, 0)

    @property
    def seq(self) -> int:
        """The catalog change the index held when this process last looked."""
        return self._state[0]

    def refresh(self) -> int:
        """Look again at what is committed on disk (another process may have caught up); returns the seq."""
        stamp = _stamp(self.path / SEQ_FILE)
        if stamp != self._stamp:
            seq = _read_seq(self.path)
            self.index.reload()
            self._stamp, self._state = stamp, (seq, self.index.searcher())
        return self.seq

    # -- searching --------------------------------------------------------------------------------

    def search(self, stems: Sequence[str], k: int, allowed: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """BM25 of the stems (one clause per occurrence, so a repeated word weighs more, as in FTS5), best first;
        only the `allowed` chunk ids when given."""
        if not stems or k <= 0 or (allowed is not None and not allowed):
            return []
        _, searcher = self._state
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(SCHEMA, "body", s)) for s in stems])
        if allowed is not None:  # must be allowed (scoring nothing) and must match a term
            only = tantivy.Query.const_score_query(tantivy.Query.term_set_query(SCHEMA, "id", [int(i) for i in allowed]), 0.0)
            query = tantivy.Query.boolean_query([(tantivy.Occur.Must, only), (tantivy.Occur.Must, query)])
        hits = searcher.search(query, k, count=False).hits
        ids = searcher.fast_field_values("id", [address for _, address in hits])
        return [(int(i), float(score)) for i, (score, _) in zip(ids, hits)]

    def ids(self) -> np.ndarray:
        """Every chunk id the index holds, ascending, a duplicate as often as it is held."""
        _, searcher = self._state
        if not searcher.num_docs:
            return np.zeros(0, dtype=np.int64)
        hits = searcher.search(tantivy.Query.all_query(), searcher.num_docs, count=False).hits
        return np.sort(np.array(searcher.fast_field_values("id", [a for _, a in hits]), dtype=np.int64))

    # -- deriving from the catalog ----------------------------------------------------------------

    def catch_up(self, catalog: Catalog, collection_id: int) -> int | None:
        """Apply the catalog's changes after the held seq (each changed chunk deleted, then added again from its
        FTS row if it has one); returns how many were applied, or None (none applied) if the log was compacted
        past the index: only `rebuild` brings it up to date. WriterBusy if another process is writing it."""
        if self.refresh() == catalog.last_seq(collection_id):  # nothing to apply: no writer taken
            return 0
        with self._writer(CATCH_UP_HEAP) as writer:
            with catalog.snapshot() as db:  # the rows as of the changes read, whatever commits meanwhile
                changes = catalog.changes_since(collection_id, self.seq)
                if changes is None:
                    return None
                if not changes:
                    return 0
                touched = list(dict.fromkeys(chunk_id for _, chunk_id, _ in changes))
                rows = _fts_rows(db, collection_id, touched)
            for chunk_id in touched:
                writer.delete_documents_by_term("id", chunk_id)
            for chunk_id, body in rows:
                writer.add_document(tantivy.Document(id=chunk_id, body=body))
            self._commit(writer, changes[-1][0])
        return len(changes)

    def rebuild(self, catalog: Catalog, collection_id: int) -> int:
        """Replace everything the index holds by the collection's FTS rows, in one commit; returns how many."""
        with self._writer(BUILD_HEAP) as writer:
            writer.delete_all_documents()
            count = 0
            with catalog.snapshot() as db:
                seq = catalog.last_seq(collection_id)
                for chunk_id, body in db.execute(f"SELECT rowid, body FROM {fts_table(collection_id)}"):
                    writer.add_document(tantivy.Document(id=chunk_id, body=body))
                    count += 1
            self._commit(writer, seq)
        return count

    def _commit(self, writer: tantivy.IndexWriter, seq: int) -> None:
        """Commit, then record the seq (a crash between the two leaves the index ahead of its seq: harmless, the
        changes are applied again), then let this process's searches see it."""
        writer.commit()
        writer.wait_merging_threads()  # merges finish before the writer (and its lock) goes
        _write_seq(self.path, seq)
        self.index.reload()
        self._stamp, self._state = _stamp(self.path / SEQ_FILE), (seq, self.index.searcher())

    @contextmanager
    def _writer(self, heap: int) -> Iterator[tantivy.IndexWriter]:
        """The index's writer, with what another process committed before it read (threads of this process
        wait for each other; another process holding it is WriterBusy). It goes (with its lock) on leaving, even
        on an error: the writer is consumed, never left alive in a traceback holding the lock."""
        with self._write_lock:
            try:
                writer = self.index.writer(heap_size=heap, num_threads=1)
            except ValueError as exc:
                if "LockBusy" in str(exc):
                    raise WriterBusy(f"{self.path} is being written by another process") from None
                raise
            try:
                self.refresh()
                yield writer
            except BaseException:
                try:  # not committed (or committed and consumed already): let it go
                    writer.rollback()
                    writer.wait_merging_threads()
                except Exception:
                    pass
                raise
            else:  # left with nothing to commit (the log had nothing new, or was compacted past the index)
                try:
                    writer.wait_merging_threads()
                except Exception:  # consumed by the commit already
                    pass


class LexicalIndexes:
    """The tantivy indexes of one data directory, by collection: which one a search may use, and keeping them
    derived (`sync`), checked and rebuilt. The embedded store holds one."""

    def __init__(self, root: Path, catalog: Catalog, policy: LexicalPolicy) -> None:
        self.root = Path(root)
        self.catalog = catalog
        self.policy = policy
        self._open: dict[int, TantivyIndex | float] = {}  # collection id: its index, or when none was found
        self._lock = threading.RLock()
        self._writers: dict[int, threading.Lock] = {}

    @contextmanager
    def _writing(self, collection_id: int) -> Iterator[None]:
        """The right to build, catch up, rebuild or remove a collection's index: threads of this process wait
        for each other; another process holding it (an flock on a file beside the index, which a build's rmtree
        never touches) is WriterBusy."""
        with self._lock:
            writer = self._writers.setdefault(collection_id, threading.Lock())
        with writer:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.root / f"{int(collection_id)}.lock", "a+b") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise WriterBusy(f"{self.path(collection_id)} is being written by another process") from None
                try:
                    yield
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def path(self, collection_id: int) -> Path:
        """Where a collection's index lives."""
        return self.root / str(int(collection_id))

    def _loaded(self, collection_id: int, again: bool = False) -> TantivyIndex | None:
        """The collection's index as saved, opened once (None: there is none, or it cannot be read, said once in
        the log; looked for again after RECHECK_S, or now with `again`). Never built here: `sync` builds."""
        if self.policy.engine == "fts5":
            return None
        with self._lock:
            found = self._open.get(collection_id)
            if isinstance(found, TantivyIndex):
                return found
            if found is not None and not again and time.monotonic() - found < RECHECK_S:
                return None
            path = self.path(collection_id)
            index: TantivyIndex | None = None
            if path.exists():
                try:
                    index = TantivyIndex.open(path)
                except Exception as exc:  # a damaged derived index is rebuilt at the next sync, never trusted
                    log.warning("lexical index %s cannot be read (%s: %s); FTS5 ranks until it is rebuilt", path,
                                type(exc).__name__, exc)
            self._open[collection_id] = index if index is not None else time.monotonic()
            return index

    def _drop(self, collection_id: int) -> None:
        with self._lock:
            self._open.pop(collection_id, None)

    def current(self, collection_id: int) -> TantivyIndex | None:
        """The index if it holds exactly the catalog's last change (after looking at what another process
        committed), else None: FTS5 is then the one that is right."""
        index = self._loaded(collection_id)
        if index is None:
            return None
        last = self.catalog.last_seq(collection_id)
        if index.seq != last:
            try:
                index.refresh()
            except Exception as exc:
                log.warning("lexical index %s cannot be re-read (%s); FTS5 ranks", index.path, exc)
                self._drop(collection_id)
                return None
        return index if index.seq == last else None

    def engine(self, collection_id: int) -> str:
        """What ranks the collection's BM25 now: `tantivy` or `fts5`."""
        return "tantivy" if self.current(collection_id) is not None else "fts5"

    def search(self, collection_id: int, question: str, k: int,
               allowed: Sequence[int] | None = None) -> list[tuple[int, float]] | None:
        """BM25 by tantivy, (chunk id, score) best first, higher better; None when it may not answer (no index,
        or one behind the catalog): the caller asks FTS5. Every stem of the question is scored (no row budget)."""
        index = self.current(collection_id)
        if index is None:
            return None
        try:
            return index.search(query_stems(question), k, allowed)
        except Exception as exc:  # an index gone bad under the process: FTS5 answers, the next sync rebuilds
            log.warning("lexical index %s failed a search (%s: %s); FTS5 ranks", index.path, type(exc).__name__, exc)
            self._drop(collection_id)
            return None

    def sync(self, collection_id: int, chunks: int) -> int | None:
        """Bring the collection's index in line with the policy and the catalog: build it (missing, unreadable,
        or behind a compacted log), catch it up, or remove it (`auto` below half the threshold). Returns the
        change it holds, which the change log must keep what follows of; None when it keeps no index (or
        none is built yet because another process is writing it)."""
        if self.policy.engine == "fts5":  # left as it is: a later `tantivy` catches it up or rebuilds it
            return None
        path = self.path(collection_id)
        index: TantivyIndex | None = None
        try:
            with self._writing(collection_id):
                index = self._loaded(collection_id, again=True)
                if not self.policy.wanted(chunks, index is not None or path.exists()):
                    if path.exists():
                        log.info("collection %d has %d chunks: FTS5 ranks it, its tantivy index goes", collection_id,
                                 chunks)
                        self._forget(collection_id)
                    return None
                if index is None:
                    index = self._build(collection_id)
                if index.catch_up(self.catalog, collection_id) is None:
                    log.warning("lexical index %s is behind the compacted change log (change %d); rebuilding it",
                                path, index.seq)
                    index.rebuild(self.catalog, collection_id)
                    index.catch_up(self.catalog, collection_id)
        except WriterBusy as exc:
            log.debug("%s; it catches up", exc)
            return index.seq if index is not None else None
        except Exception as exc:  # noqa: BLE001 - a derived index: FTS5 ranks meanwhile, the next sync rebuilds it
            log.warning("lexical index %s could not be brought up to date (%s: %s); FTS5 ranks the collection",
                        path, type(exc).__name__, exc)
            self._drop(collection_id)
            return None
        return index.seq

    def _build(self, collection_id: int) -> TantivyIndex:
        """A new index of every FTS row of the collection, used from now on."""
        path = self.path(collection_id)
        started = time.perf_counter()
        index = TantivyIndex.create(path)
        count = index.rebuild(self.catalog, collection_id)
        log.info("built lexical index %s: %d chunks in %.1f s", path, count, time.perf_counter() - started)
        with self._lock:
            self._open[collection_id] = index
        return index

    def rebuild(self, collection_id: int, chunks: int) -> None:
        """Rebuild the collection's index from scratch if the policy keeps one (`repair`, `docqa reindex`)."""
        if self.policy.engine == "fts5" or not self.policy.wanted(chunks, self.path(collection_id).exists()):
            return
        try:
            with self._writing(collection_id):
                self._drop(collection_id)
                self._build(collection_id)
        except WriterBusy as exc:
            raise StorageError(f"cannot rebuild the lexical index: {exc}; try again when it is done") from None

    def forget(self, collection_id: int) -> None:
        """Drop the collection's index and its directory (the collection was deleted, or no longer needs one)."""
        try:
            with self._writing(collection_id):
                self._forget(collection_id)
        except WriterBusy:  # another process is writing it: the directory stays, unread (collection ids are never reused)
            self._drop(collection_id)

    def _forget(self, collection_id: int) -> None:
        self._drop(collection_id)
        shutil.rmtree(self.path(collection_id), ignore_errors=True)

    # -- consistency ------------------------------------------------------------------------------

    def read_for_check(self, collection_id: int) -> tuple[int, np.ndarray] | str | None:
        """The saved index's seq and ids, read fresh from disk (before the catalog snapshot `compare` runs in);
        None if there is none, or why it cannot be read."""
        path = self.path(collection_id)
        if self.policy.engine == "fts5" or not path.exists():
            return None
        try:
            index = TantivyIndex.open(path)
            return index.seq, index.ids()
        except Exception as exc:
            return f"lexical index {path} cannot be read: {type(exc).__name__}: {exc}"

    def compare(self, collection_id: int, loaded: tuple[int, np.ndarray] | str | None, fts_ids: np.ndarray,
                report: CheckReport) -> None:
        """Note in the report where the index (as `read_for_check` read it) disagrees with the FTS rows, exactly:
        every chunk no change since its seq touched must be held once, and nothing else. Inside the snapshot."""
        path = self.path(collection_id)
        if loaded is None:
            if self.policy.wanted(report.chunks, False) and self.catalog.last_seq(collection_id) > 0:
                report.problems.append(f"lexical index {path} is missing")
            return
        if isinstance(loaded, str):
            report.problems.append(loaded)
            return
        if not self.policy.wanted(report.chunks, True):
            return  # FTS5 ranks this collection; the next sync removes the index
        seq, ids = loaded
        last = self.catalog.last_seq(collection_id)
        if seq > last:
            report.problems.append(f"lexical index {path} reflects change {seq}, newer than the catalog's last ({last})")
            return
        changes = self.catalog.changes_since(collection_id, seq)
        if changes is None:
            report.problems.append(f"lexical index {path} reflects change {seq}, older than the change log kept for it")
            return
        touched = np.array(sorted({c for _, c, _ in changes}), dtype=np.int64)
        held, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            report.problems.append(f"lexical index {path} holds chunks {held[counts > 1][:20].tolist()} more than once")
        held = np.setdiff1d(held, touched)
        rows = np.setdiff1d(fts_ids, touched)
        report.missing_lexical_index = sorted(int(i) for i in np.setdiff1d(rows, held))
        report.orphan_lexical_index = sorted(int(i) for i in np.setdiff1d(held, rows))


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_ino


def _read_seq(path: Path) -> int:
    return int(json.loads((path / SEQ_FILE).read_text())["seq"])


def _write_seq(path: Path, seq: int) -> None:
    """Record the seq atomically (temp file, fsync, rename): a reader sees the old one or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path, prefix=".seq-")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump({"seq": seq}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path / SEQ_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fts_rows(db, collection_id: int, chunk_ids: list[int]) -> list[tuple[int, str]]:
    rows: list[tuple[int, str]] = []
    for i in range(0, len(chunk_ids), READ_BATCH):
        part = chunk_ids[i : i + READ_BATCH]
        rows += db.execute(
            f"SELECT rowid, body FROM {fts_table(collection_id)} WHERE rowid IN ({','.join('?' * len(part))})", part
        ).fetchall()
    return rows
