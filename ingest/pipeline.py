"""discover → hash → parse → chunk → embed → commit, one document per transaction; returns a Report.

Parsing runs in child processes (several for big batches: it is the CPU-bound part for PDFs), each file
with a time limit that really stops it (see isolation.py); embedding is batched across
documents for throughput; each document is committed on its own, so a crash or Ctrl-C loses at most
the documents not yet committed, and running the same command again finishes the job.

A file's attachments (an e-mail's) are documents of their own, `<file source>#<name>` with `attached_to` the file
in their metadata: parsed in a parser process like a file, failing alone, replaced or removed with their file (also
when it fails, unless its indexed version is kept). The file lists their names under `attachments`; an unchanged file
one of whose attachments the store does not hold as ok (lost to a store that went away or an interrupted run, or it
failed) is parsed again for its attachments only: each is retried as a failed file is, on every run.

Given metadata wins over metadata read from the file; the given keys its parser could read too are listed under
`overrides`, so that comparing the given metadata with the stored one is exact.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePath
from typing import Any, Iterable, Iterator, Sequence

from indexes.embedders import SpanEmbedder
from indexes.errors import DocQAError, LimitExceeded, ParseError, StorageError
from indexes.store import Store
from indexes.types import ChunkInput, Collection, DocumentFields, DocumentRecord
from ingest.chunking import ChunkingOptions, chunk_document, embed_sentence_spans
from ingest.isolation import IngestLimits, ParseInterrupted, parser_process
from ingest.parsers import Format, ParsedDocument, formats, parser_for, supported_suffixes
from ingest.parsers.base import Attachment
from ingest.parsers.ocr import OcrOptions

# What service/ may use: the pipeline and what it takes (tests/test_layers.py holds service/ to this module and the CLI).
__all__ = [
    "ChunkingOptions", "FileResult", "Format", "IngestLimits", "IngestPipeline", "IngestReport",
    "OcrOptions", "ProgressSink", "SourceFile", "discover", "formats", "remove_document", "sha256_file",
    "supported_suffixes",
]

log = logging.getLogger("docqa.ingest")
STATUSES = ("ingested", "unchanged", "replaced", "removed", "failed")
ATTACHED_TO = "attached_to"  # an attachment's metadata key: the source of the file it came in
ATTACHMENTS = "attachments"  # a file's metadata key: the names of its attachments that were ingested
OVERRIDES = "overrides"  # a document's metadata key: the keys given that its parser reads from the file too


@dataclass(frozen=True)
class SourceFile:
    """One file to ingest: where its bytes are, and the name it is known by in the catalog."""

    path: Path
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class FileResult:
    """What happened to one file."""

    source: str
    status: str
    reason: str | None = None
    chunks: int = 0
    document_id: int | None = None


@dataclass
class IngestReport:
    """A run's outcome: one result per file, and the totals."""

    collection: str
    results: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        """How many files ended in each status."""
        return {s: sum(r.status == s for r in self.results) for s in STATUSES}

    @property
    def failures(self) -> list[FileResult]:
        """The files that failed, with their reasons."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def chunks(self) -> int:
        """Chunks written in this run."""
        return sum(r.chunks for r in self.results if r.status in ("ingested", "replaced"))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, for `--json` and the jobs API."""
        return {
            "collection": self.collection,
            "counts": self.counts(),
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "results": [asdict(r) for r in self.results],
        }


class ProgressSink:
    """Receives progress; the CLI draws bars from it, the jobs API counts. Methods default to no-ops."""

    def start(self, files: int) -> None: ...

    def file_done(self, result: FileResult) -> None: ...

    def chunks_embedded(self, count: int) -> None: ...

    def pages_ocred(self, count: int) -> None: ...  # pages of a file just parsed that were read by OCR


def discover(paths: Sequence[Path], globs: Sequence[str] = ()) -> list[Path]:
    """Supported files under the given paths (files are taken as given), sorted, without duplicates."""
    found: dict[Path, None] = {}
    for root in paths:
        root = Path(root)
        if root.is_file():
            found[root.resolve()] = None
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if name.startswith(".") or path.suffix.lower() not in supported_suffixes():
                    continue
                if globs and not any(fnmatch.fnmatch(name, g) or fnmatch.fnmatch(str(path), g) for g in globs):
                    continue
                found[path.resolve()] = None
    return sorted(found)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class _Pending:
    """A parsed, chunked document waiting for its embeddings."""

    file: SourceFile
    fields: DocumentFields
    chunks: list[ChunkInput]
    replacing: bool


class IngestPipeline:
    """Ingests files into one collection of a Store."""

    def __init__(
        self,
        store: Store,
        collection: Collection,
        *,
        chunking: ChunkingOptions | None = None,
        limits: IngestLimits | None = None,
        ocr: OcrOptions | None = None,
        workers: int | None = None,
        embed_batch: int = 256,
    ) -> None:
        self.store = store
        self.collection = collection
        self.embedder = store.embedder(collection)
        self.chunking = chunking or ChunkingOptions(max_tokens=self.embedder.identity.max_tokens)
        if self.chunking.max_tokens > self.embedder.identity.max_tokens:
            raise ValueError(
                f"chunk max_tokens {self.chunking.max_tokens} exceeds the embedder's window"
                f" {self.embedder.identity.max_tokens}"
            )
        self.limits = limits or IngestLimits()
        self.ocr = ocr or OcrOptions()
        self.workers = workers
        self.embed_batch = embed_batch

    # -- public -----------------------------------------------------------------------------------

    def ingest_paths(
        self, paths: Sequence[Path], *, globs: Sequence[str] = (), metadata: dict[str, Any] | None = None,
        sync: bool = False, progress: ProgressSink | None = None,
    ) -> IngestReport:
        """Ingest every supported file under `paths`; with `sync`, remove documents whose files are gone."""
        progress = progress or ProgressSink()
        files = [SourceFile(p, str(p), dict(metadata or {})) for p in discover(paths, globs)]
        report = self.ingest(files, progress=progress)
        if sync:
            roots = [str(Path(p).resolve()) for p in paths]
            report.results += self.prune(roots, {f.source for f in files}, progress)
        return report

    def ingest(self, files: Sequence[SourceFile], progress: ProgressSink | None = None) -> IngestReport:
        """Ingest the given files; a failure is recorded and the batch goes on."""
        progress = progress or ProgressSink()
        report = IngestReport(self.collection.name)
        started = time.perf_counter()
        progress.start(len(files))
        pending: list[_Pending] = []
        try:
            for item in self._parsed(files, report, progress):
                pending.append(item)
                if sum(len(p.chunks) for p in pending) >= self.embed_batch:
                    self._commit(pending, report, progress)
                    pending = []
            self._commit(pending, report, progress)
        except BaseException as failure:  # Ctrl-C, a dead embedder: save what was committed, then go on failing
            self._flush_after(failure)
            raise
        self.store.flush(self.collection)
        report.seconds = time.perf_counter() - started
        return report

    def _flush_after(self, failure: BaseException) -> None:
        """Save the vectors while `failure` is in flight; a save that fails too is logged and noted on it, never
        raised in its place (the vectors are derived: the next open catches them up from the catalog)."""
        try:
            self.store.flush(self.collection)
        except Exception as exc:
            log.warning("saving the vectors failed after %s: %s", type(failure).__name__, exc)
            failure.add_note(f"saving the vectors failed too: {exc}")

    # -- stages -----------------------------------------------------------------------------------

    def _parsed(self, files: Sequence[SourceFile], report: IngestReport, progress: ProgressSink) -> Iterator[_Pending]:
        """Hash each file, skip unchanged ones, parse and chunk the rest (in order), each followed by its
        attachments."""
        stored: dict[str, list[DocumentRecord]] | None = None  # the collection's attachments by file, read once

        def stored_attachments(source: str) -> list[DocumentRecord]:
            nonlocal stored
            if stored is None:
                stored = _attachments_by_file(self.store.list_documents(self.collection))
            return stored.get(source, [])

        todo: list[tuple[SourceFile, DocumentFields, DocumentRecord | None, bool]] = []
        for file in files:
            try:
                stat = file.path.stat()
                digest = sha256_file(file.path)
            except OSError as exc:
                self._fail(file, DocumentFields(file.source, "", 0), f"cannot read file: {exc.strerror}", report, progress,
                           transient=True)
                continue
            fields = DocumentFields(file.source, digest, stat.st_size, stat.st_mtime, metadata=file.metadata)
            needed, known = self._needed(file, fields, file.path.name, report, progress)
            lost = _ok(known) and ATTACHMENTS in known.metadata and _lost(known, stored_attachments(file.source))
            if needed or lost:
                todo.append((file, fields, known, needed))
        for (file, fields, known, needed), outcome in zip(todo, self._parse_all(todo)):
            if not needed:  # unchanged, parsed again for its attachments only
                if isinstance(outcome, BaseException):
                    log.warning("%s: its attachments were not retried: %s", file.source, _reason(outcome))
                else:
                    yield from self._attached(self._attachments(file, outcome), fields.mtime, report, progress)
                continue
            if isinstance(outcome, BaseException):
                transient = isinstance(outcome, ParseInterrupted)
                self._fail(file, fields, _reason(outcome), report, progress, transient=transient)
                if known is not None and not (transient and _ok(known)):  # not kept: nor are its attachments
                    self._drop(stored_attachments(file.source), set(), report, progress)
                continue
            if outcome.ocr_pages:
                progress.pages_ocred(len(outcome.ocr_pages))
            attachments = self._attachments(file, outcome)
            try:
                yield self._chunked(file, fields, outcome, _ok(known), file.path.name, attachments)
            except DocQAError as exc:
                self._fail(file, fields, exc.detail, report, progress)
                if known is not None:
                    self._drop(stored_attachments(file.source), set(), report, progress)
                continue
            if known is not None:  # a file parsed again drops the attachments it no longer has
                self._drop(stored_attachments(file.source), {a.source for a, _ in attachments}, report, progress)
            yield from self._attached(attachments, fields.mtime, report, progress)

    def _drop(
        self, attached: list[DocumentRecord], keep: set[str], report: IngestReport, progress: ProgressSink,
    ) -> None:
        """Delete a file's stored attachments but those in `keep`."""
        for doc in attached:
            if doc.source not in keep:
                self.store.delete_document(self.collection, doc.id)
                _record(FileResult(doc.source, "removed", chunks=doc.chunk_count, document_id=doc.id), report, progress)

    def _needed(
        self, file: SourceFile, fields: DocumentFields, name: str, report: IngestReport, progress: ProgressSink,
    ) -> tuple[bool, DocumentRecord | None]:
        """Whether a file must be parsed (it is new or changed: not unchanged, and the store could be asked), and the
        version the store holds. Metadata its parser read from the file is not compared: the bytes decide that. An
        unchanged file is recorded as such here."""
        try:
            known = self.store.find_document(self.collection, file.source)
        except StorageError as exc:
            self._fail(file, fields, f"not committed: {exc.detail}", report, progress, transient=True)
            return False, None
        if known is None or known.status != "ok" or known.sha256 != fields.sha256:
            return True, known
        given = _given(known.metadata, name)
        if given != file.metadata:
            return True, known
        _record(FileResult(file.source, "unchanged", chunks=known.chunk_count, document_id=known.id), report, progress)
        return False, known

    def _attachments(self, file: SourceFile, document: ParsedDocument) -> list[tuple[SourceFile, Attachment]]:
        """A parsed file's attachments that some parser reads, each as a file `<source>#<name>` (names made unique)
        attached to it; the others are warnings on the file. An attachment's own attachments are not taken."""
        found: list[tuple[SourceFile, Attachment]] = []
        names: set[str] = set()
        metadata = {**file.metadata, ATTACHED_TO: file.source}
        for attachment in document.attachments:
            if file.metadata.get(ATTACHED_TO) is not None:
                document.warnings.append(f"attachment {attachment.name} not ingested: it is inside an attachment")
            elif parser_for(attachment.name) is None:
                document.warnings.append(f"attachment {attachment.name} not ingested: unsupported file type")
            else:
                name = _unique(attachment.name, names)
                source = SourceFile(file.path, f"{file.source}#{name}", metadata)
                found.append((source, Attachment(name, attachment.data)))
        return found

    def _attached(
        self, attachments: list[tuple[SourceFile, Attachment]], mtime: float | None, report: IngestReport,
        progress: ProgressSink,
    ) -> Iterator[_Pending]:
        """Each attachment, unless unchanged, parsed in a parser process and chunked like a file; it fails alone."""
        todo = []
        for file, attachment in attachments:
            digest = hashlib.sha256(attachment.data).hexdigest()
            fields = DocumentFields(file.source, digest, len(attachment.data), mtime, metadata=file.metadata)
            needed, known = self._needed(file, fields, attachment.name, report, progress)
            if needed:
                todo.append((file, fields, known, attachment))
        if not todo:
            return
        with parser_process() as parser:
            for file, fields, known, attachment in todo:
                outcome = parser.parse(attachment.data, attachment.name, self.limits, self.ocr)
                if isinstance(outcome, BaseException):
                    self._fail(file, fields, _reason(outcome), report, progress,
                               transient=isinstance(outcome, ParseInterrupted))
                    continue
                self._attachments(file, outcome)  # notes that its own are not ingested
                try:
                    yield self._chunked(file, fields, outcome, _ok(known), attachment.name)
                except DocQAError as exc:
                    self._fail(file, fields, exc.detail, report, progress)

    def _parse_all(
        self, todo: Sequence[tuple[SourceFile, DocumentFields, DocumentRecord | None, bool]],
    ) -> Iterable[ParsedDocument | BaseException]:
        """Parse files in order, each in a parser process that is killed if it runs past the time limit."""
        workers = self.workers if self.workers is not None else (min(4, os.cpu_count() or 1) if len(todo) > 3 else 0)
        args = [(str(f.path), f.path.name, self.limits, self.ocr) for f, *_ in todo]
        if workers <= 1:
            with parser_process() as parser:
                for a in args:
                    yield parser.parse(*a)
            return
        window = workers * 4  # parse ahead of embedding, but don't hold the whole corpus in memory
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="docqa-parse") as threads:
            futures = [threads.submit(_parse_isolated, *a) for a in args[:window]]
            for i in range(len(args)):
                if i + window < len(args):
                    futures.append(threads.submit(_parse_isolated, *args[i + window]))
                yield futures[i].result()
                futures[i] = None  # type: ignore[call-overload]  # let the parsed document be freed

    def _chunked(
        self, file: SourceFile, fields: DocumentFields, document: ParsedDocument, replacing: bool, name: str,
        attachments: Sequence[tuple[SourceFile, Attachment]] = (),
    ) -> _Pending:
        """The document's chunks and what is stored with it: metadata read from the file under the given metadata,
        with the given keys that override it (`overrides`) and the names of its attachments (`attachments`)."""
        title = document.title or PurePath(name).stem
        chunks = chunk_document(document, self.embedder.count_tokens, self.chunking, title=title)
        if not chunks:
            raise ParseError("no text to index after chunking")
        if len(chunks) > self.limits.max_chunks:
            raise LimitExceeded(f"too many chunks: {len(chunks)} (limit {self.limits.max_chunks})")
        given = fields.metadata or {}
        metadata = {**document.metadata, **given}
        if overrides := sorted(k for k in given if k in _read_from_file(name)):
            metadata[OVERRIDES] = overrides
        if attachments:
            metadata[ATTACHMENTS] = [a.name for _, a in attachments]
        fields = DocumentFields(
            fields.source, fields.sha256, fields.size, fields.mtime, title=title, metadata=metadata,
            pages=document.pages, warnings=tuple(document.warnings), text=document.text,
            ocr_pages=tuple(document.ocr_pages),
        )
        return _Pending(file, fields, chunks, replacing)

    def _commit(self, pending: list[_Pending], report: IngestReport, progress: ProgressSink) -> None:
        """Embed a batch of documents together, then commit each in its own transaction."""
        if not pending:
            return
        chunks = [c for p in pending for c in p.chunks]
        texts = [c.embed_text for c in chunks]
        if isinstance(self.embedder, SpanEmbedder):
            spans = [embed_sentence_spans(c) for c in chunks]
            vectors, sentences = self.embedder.embed_documents_with_spans(texts, spans)
        else:
            vectors, sentences = self.embedder.embed_documents(texts), [None] * len(texts)
        progress.chunks_embedded(len(texts))
        offset = 0
        for item in pending:
            n = len(item.chunks)
            try:
                document_id, _ = self.store.put_document(
                    self.collection, item.fields, item.chunks, vectors[offset : offset + n], sentences[offset : offset + n]
                )
            except StorageError as exc:  # the store went away: this file is not in it; a rerun commits it
                _record(FileResult(item.file.source, "failed", reason=f"not committed: {exc.detail}"), report, progress)
                continue
            finally:
                offset += n
            _record(FileResult(item.file.source, "replaced" if item.replacing else "ingested", chunks=n,
                               document_id=document_id), report, progress)

    def _fail(
        self, file: SourceFile, fields: DocumentFields, reason: str, report: IngestReport, progress: ProgressSink,
        transient: bool = False,
    ) -> None:
        """Record a failure; a transient one (unreadable now, parse stopped) keeps an indexed good version. A store
        that is down gets nothing recorded: the failure is in the report, and a rerun tries the file again."""
        try:
            known = self.store.find_document(self.collection, file.source) if transient else None
            if known is not None and known.status == "ok":
                result = FileResult(file.source, "failed", reason=f"{reason}; the indexed version was kept", document_id=known.id)
            else:
                document_id = self.store.record_failure(self.collection, fields, reason)
                result = FileResult(file.source, "failed", reason=reason, document_id=document_id)
        except StorageError:
            result = FileResult(file.source, "failed", reason=reason)
        _record(result, report, progress)

    def prune(self, roots: Sequence[str], present: set[str], progress: ProgressSink) -> list[FileResult]:
        """Remove documents under the walked roots whose files are gone (not merely left out by a --glob); an
        attachment goes with the file it came in."""
        removed = []
        for doc in self.store.list_documents(self.collection):
            file = _file_of(doc)
            under = any(file == r or file.startswith(r.rstrip(os.sep) + os.sep) for r in roots)
            if under and file not in present and not os.path.isfile(file):
                self.store.delete_document(self.collection, doc.id)
                result = FileResult(doc.source, "removed", chunks=doc.chunk_count, document_id=doc.id)
                removed.append(result)
                progress.file_done(result)
        return removed


def remove_document(store: Store, collection: Collection, document: DocumentRecord) -> list[DocumentRecord]:
    """Delete a document and the documents attached to it (an e-mail's attachments); returns what was removed."""
    removed = [document, *_attachments_by_file(store.list_documents(collection)).get(document.source, [])]
    for doc in removed:
        store.delete_document(collection, doc.id)
    return removed


def _file_of(doc: DocumentRecord) -> str:
    """The source of the file a document is: its own, or for an attachment, the file it came in."""
    file = doc.metadata.get(ATTACHED_TO)
    return file if isinstance(file, str) else doc.source


def _attachments_by_file(documents: Iterable[DocumentRecord]) -> dict[str, list[DocumentRecord]]:
    found: dict[str, list[DocumentRecord]] = {}
    for doc in documents:
        if _file_of(doc) != doc.source:
            found.setdefault(_file_of(doc), []).append(doc)
    return found


def _read_from_file(name: str) -> tuple[str, ...]:
    """The metadata keys the parser of `name` may read from the file."""
    return tuple(getattr(parser_for(name), "metadata_keys", ()))


def _given(metadata: dict[str, Any], name: str) -> dict[str, Any]:
    """The metadata that was given for a stored document: all but what its parser read (the keys it reads, unless
    listed under `overrides`) and what the pipeline adds."""
    overrides = metadata.get(OVERRIDES, ())
    read = {k for k in _read_from_file(name) if k not in overrides} | {OVERRIDES, ATTACHMENTS}
    return {k: v for k, v in metadata.items() if k not in read}


def _lost(document: DocumentRecord, attached: list[DocumentRecord]) -> bool:
    """Whether one of the attachments a stored file lists is not stored as ok (missing, or failed)."""
    ok = {d.source for d in attached if d.status == "ok"}
    return any(f"{document.source}#{name}" not in ok for name in document.metadata.get(ATTACHMENTS, ()))


def _unique(name: str, taken: set[str]) -> str:
    """`name`, or "stem (2).ext", "stem (3).ext"… if it is taken; the result is taken from then on."""
    path, candidate, n = PurePath(name), name, 1
    while candidate in taken:
        n += 1
        candidate = f"{path.stem} ({n}){path.suffix}"
    taken.add(candidate)
    return candidate


def _ok(known: DocumentRecord | None) -> bool:
    return known is not None and known.status == "ok"


def _record(result: FileResult, report: IngestReport, progress: ProgressSink) -> None:
    report.results.append(result)
    progress.file_done(result)


def _parse_isolated(path: str, name: str, limits: IngestLimits, ocr: OcrOptions) -> ParsedDocument | BaseException:
    """One file in a borrowed parser process (runs on a parse thread)."""
    with parser_process() as parser:
        return parser.parse(path, name, limits, ocr)


def _reason(exc: BaseException) -> str:
    """A one-line reason for a failure, without a traceback."""
    if isinstance(exc, DocQAError):
        return exc.detail
    return f"{type(exc).__name__}: {exc}"
