"""The ingestion driver: list → hash → skip unchanged → prepare (an engine) → commit, one document per transaction.

The driver plans (hashes local files, skips unchanged ones before anything is dispatched), hands the rest to an
engine that prepares them (parse in a killable child, chunk, embed: ingest/prepare.py, no store), and commits each
prepared document as it arrives, in its own transaction: it is the only writer, so a crash or Ctrl-C, of this
process or of a worker, loses at most the documents not yet committed, and running the same command again finishes
the job. The `local` engine prepares in this process (below); the `ray` engine on a Ray cluster (ray_engine.py).

A file's attachments (an e-mail's) are documents of their own, `<file source>#<name>` with `attached_to` the file
in their metadata: parsed in a parser process like a file, failing alone, replaced or removed with their file (also
when it fails, unless its indexed version is kept). The file lists their names under `attachments`; an unchanged file
one of whose attachments the store does not hold as ok (lost to a store that went away or an interrupted run, or it
failed) is parsed again for its attachments only: each is retried as a failed file is, on every run.

Given metadata wins over metadata read from the file; the given keys its parser could read too are listed under
`overrides`, so that comparing the given metadata with the stored one is exact. Sources may be URLs (s3://, gs://,
az://, http(s)://, through fsspec: ingest/sources.py); a document read from one records the object's version (its etag, or mtime and
size) under `object`, so that an unchanged object is skipped without being downloaded.
"""

from __future__ import annotations

import contextvars
import fnmatch
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

from opentelemetry import trace

from indexes import plugins
from indexes.embedders import Embedder
from indexes.errors import InvalidInput, NotFound, StorageError
from indexes.store import Store
from indexes.types import Collection, DocumentFields, DocumentRecord
from ingest.chunking import ChunkingOptions
from ingest.isolation import IngestLimits, parser_process
from ingest.parsers import Format, ParsedDocument, formats, supported_suffixes
from ingest.parsers.ocr import OcrOptions
from ingest.prepare import (
    ADDED, ATTACHED_TO, ATTACHMENTS, OBJECT, PreparedDocument, PrepareSpec, PrepareTask, SourceFile, embed_prepared,
    local_fields, parse_source, prepare_unembedded, read_from_file, sha256_file,
)
from ingest import sources
from ingest.sample import SAMPLE_FILES, sample_texts
from ingest.sources import is_url

# What service/ may use: the pipeline and what it takes (tests/test_layers.py holds service/ to this module and the CLI).
__all__ = [
    "ChunkingOptions", "Engine", "EngineOptions", "FileResult", "Format", "IngestLimits", "IngestPipeline",
    "IngestReport", "OcrOptions", "ProgressSink", "SAMPLE_FILES", "SourceFile", "build_engine", "discover", "engines", "file_document",
    "formats", "given_metadata", "remove_document", "sample_texts", "sha256_file", "supported_suffixes",
]

log = logging.getLogger("docqa.ingest")
STATUSES = ("ingested", "unchanged", "replaced", "removed", "failed")
tracer = trace.get_tracer("docqa.ingest")


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

    def stage(self, name: str, count: int) -> None: ...  # `count` more files passed an engine's stage (parsed, embedded)


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


class Engine(Protocol):
    """Turns prepare tasks into prepared, embedded documents, yielded as they are ready (in any order); the
    driver commits each as it arrives. Engines register under `docqa.engines`, as a plugin's would."""

    def prepare(
        self, tasks: Sequence[PrepareTask], spec: PrepareSpec, embedder: Embedder, progress: ProgressSink,
    ) -> Iterator[PreparedDocument]:
        """`embedder` is the driver's own, for an engine that prepares in this process."""
        ...


@dataclass(frozen=True)
class EngineOptions:
    """What an engine may be tuned by, as plain values: the local engine's parser processes and embedding batch,
    the Ray engine's cluster address."""

    workers: int | None = None
    embed_batch: int = 256
    address: str | None = None


class LocalEngine:
    """Prepares in this process: files parsed ahead in a pool of parser processes (for big batches; parsing is the
    CPU-bound part for PDFs), chunked here, embedded in batches across documents for throughput."""

    def __init__(self, options: EngineOptions | None = None) -> None:
        self.options = options or EngineOptions()

    def prepare(
        self, tasks: Sequence[PrepareTask], spec: PrepareSpec, embedder: Embedder, progress: ProgressSink,
    ) -> Iterator[PreparedDocument]:
        """Each task prepared in order; a batch is embedded once it holds `embed_batch` chunks."""
        waiting: list[PreparedDocument] = []
        size = 0
        for task, parsed in zip(tasks, self._parse_all(tasks, spec)):
            prepared = prepare_unembedded(task, spec, embedder, parsed=parsed)
            if prepared.own and prepared.failure is None and prepared.fields.ocr_pages:
                progress.pages_ocred(len(prepared.fields.ocr_pages))
            chunks = sum(len(d.chunks) for d in prepared.to_embed())
            if not chunks and not waiting:
                yield prepared
                continue
            waiting.append(prepared)
            size += chunks
            if size >= self.options.embed_batch:
                progress.chunks_embedded(embed_prepared(waiting, embedder))
                yield from waiting
                waiting, size = [], 0
        if waiting:
            progress.chunks_embedded(embed_prepared(waiting, embedder))
            yield from waiting

    def _parse_all(self, tasks: Sequence[PrepareTask], spec: PrepareSpec) -> Iterable[ParsedDocument | BaseException | None]:
        """Local files parsed in order, each in a parser process killed if it runs past the time limit; None for
        a URL (its bytes are read, then parsed, as it is prepared)."""
        workers = self.options.workers
        workers = workers if workers is not None else (min(4, os.cpu_count() or 1) if len(tasks) > 3 else 0)
        args = [(str(t.file.path), t.file.name) if t.file.path is not None else None
                for t in tasks]
        if workers <= 1:
            with parser_process() as parser:
                for a in args:
                    yield parse_source(*a, spec, parser) if a is not None else None
            return
        window = workers * 4  # parse ahead of embedding, but don't hold the whole corpus in memory
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="docqa-parse") as threads:
            futures = [_submit(threads, a, spec) for a in args[:window]]
            for i in range(len(args)):
                if i + window < len(args):
                    futures.append(_submit(threads, args[i + window], spec))
                yield futures[i].result() if futures[i] is not None else None
                futures[i] = None  # let the parsed document be freed


def local_engine(options: EngineOptions) -> Engine:
    """The `local` engine: everything in this process and its parser processes."""
    return LocalEngine(options)


def engines() -> dict[str, Callable[[EngineOptions], Engine]]:
    """Every registered engine by name."""
    return plugins.load(plugins.ENGINES)


def build_engine(name: str, options: EngineOptions | None = None) -> Engine:
    """The engine registered under `name`; InvalidInput naming the registered ones if there is none."""
    registered = engines()
    if name not in registered:
        raise InvalidInput(f"no ingest engine {name!r}; registered: {sorted(registered)}")
    return registered[name](options or EngineOptions())


@dataclass
class _Plan:
    """What the driver knew of a file when it dispatched it."""

    known: DocumentRecord | None
    hashed: bool  # whether the driver read its hash (a URL's bytes are hashed where they are read)


class IngestPipeline:
    """Ingests files into one collection of a Store: plans here (hash, skip unchanged), prepares through an engine
    (this process by default), and commits here, one document per transaction, as the only writer."""

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
        engine: Engine | None = None,
        storage_options: dict[str, Any] | None = None,
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
        self.engine = engine or LocalEngine(EngineOptions(workers=workers, embed_batch=embed_batch))
        default = store.embedders.default
        self.spec = PrepareSpec(collection.embedder, self.chunking, self.limits, self.ocr, device=default.device,
                                batch_size=default.batch_size, storage_options=dict(storage_options or {}))
        self._plans: dict[str, _Plan] = {}
        self._stored: dict[str, list[DocumentRecord]] | None = None
        self._reparse = False

    # -- public -----------------------------------------------------------------------------------

    def ingest_paths(
        self, paths: Sequence[Path | str], *, globs: Sequence[str] = (), metadata: dict[str, Any] | None = None,
        sync: bool = False, progress: ProgressSink | None = None,
    ) -> IngestReport:
        """Ingest every supported file under `paths` (local paths, or URLs such as s3://bucket/prefix); with `sync`,
        remove documents whose files or objects are gone."""
        progress = progress or ProgressSink()
        files = list_files(paths, globs, metadata or {}, self.spec.storage_options)
        report = self.ingest(files, progress=progress)
        if sync:
            roots = [str(p) if is_url(str(p)) else str(Path(sources.local_path(str(p))).resolve()) for p in paths]
            report.results += self.prune(roots, {f.source for f in files}, progress)
        return report

    def ingest(self, files: Sequence[SourceFile], progress: ProgressSink | None = None, *,
               reparse: bool = False) -> IngestReport:
        """Ingest the given files; a failure is recorded and the batch goes on. With `reparse`, unchanged files
        are parsed again too, attachments included (a re-ingest, after a parser or OCR change)."""
        progress = progress or ProgressSink()
        report = IngestReport(self.collection.name)
        with tracer.start_as_current_span("ingest", attributes={"docqa.collection": self.collection.name,
                                                                "docqa.files": len(files)}) as span:
            started = time.perf_counter()
            progress.start(len(files))
            self._plans, self._stored, self._reparse = {}, None, reparse
            try:
                tasks = self.plan(files, report, progress)
                for prepared in self.engine.prepare(tasks, self.spec, self.embedder, progress):
                    self.commit(prepared, report, progress)
            except BaseException as failure:  # Ctrl-C, a dead embedder: save what was committed, then go on failing
                self._flush_after(failure)
                raise
            self.store.flush(self.collection)
            report.seconds = time.perf_counter() - started
            span.set_attributes({f"docqa.files.{status}": n for status, n in report.counts().items()})
            span.set_attribute("docqa.chunks", report.chunks)
        return report

    def _flush_after(self, failure: BaseException) -> None:
        """Save the vectors while `failure` is in flight; a save that fails too is logged and noted on it, never
        raised in its place (the vectors are derived: the next open catches them up from the catalog)."""
        try:
            self.store.flush(self.collection)
        except Exception as exc:
            log.warning("saving the vectors failed after %s: %s", type(failure).__name__, exc)
            failure.add_note(f"saving the vectors failed too: {exc}")

    # -- plan: what must be prepared ----------------------------------------------------------------

    def plan(self, files: Sequence[SourceFile], report: IngestReport, progress: ProgressSink) -> list[PrepareTask]:
        """Hash each local file and skip unchanged ones (a URL by its listed version) before anything is dispatched;
        a file unchanged but for attachments the store lost is prepared again for those only."""
        tasks = []
        for file in files:
            fields = None
            if file.path is not None:
                try:
                    fields = local_fields(file)
                except OSError as exc:
                    self._fail(file, DocumentFields(file.source, "", 0), f"cannot read file: {exc.strerror}", report,
                               progress, transient=True)
                    continue
            needed, known = self._needed(file, fields, file.name, report, progress)
            lost = _ok(known) and ATTACHMENTS in known.metadata and _lost(known, self._attachments_of(file.source))
            if needed or lost:
                unchanged = self._unchanged_attachments(file) if known is not None and not self._reparse else frozenset()
                self._plans[file.source] = _Plan(known, fields is not None)
                tasks.append(PrepareTask(file, fields, own=needed, unchanged=unchanged))
        return tasks

    def _needed(
        self, file: SourceFile, fields: DocumentFields | None, name: str, report: IngestReport, progress: ProgressSink,
    ) -> tuple[bool, DocumentRecord | None]:
        """Whether a file must be prepared (it is new or changed: not unchanged, and the store could be asked), and
        the version the store holds. The bytes decide (a URL's listed version where its bytes are not read yet), then
        the given metadata; metadata its parser read from the file is not compared. An unchanged file is recorded
        as such here."""
        try:
            known = self.store.find_document(self.collection, file.source)
        except StorageError as exc:
            self._fail(file, fields or DocumentFields(file.source, "", 0), f"not committed: {exc.detail}", report,
                       progress, transient=True)
            return False, None
        if known is None or known.status != "ok" or self._reparse:
            return True, known
        if fields is not None:
            same = known.sha256 == fields.sha256
        else:
            same = file.version is not None and (known.metadata.get(OBJECT) or {}).get("version") == file.version
        if not same or _given(known.metadata, name) != file.metadata:
            return True, known
        _record(FileResult(file.source, "unchanged", chunks=known.chunk_count, document_id=known.id), report, progress)
        return False, known

    def _attachments_of(self, source: str) -> list[DocumentRecord]:
        """The stored attachments of a file (the collection's, read once per run)."""
        if self._stored is None:
            self._stored = _attachments_by_file(self.store.list_documents(self.collection))
        return self._stored.get(source, [])

    def _unchanged_attachments(self, file: SourceFile) -> frozenset[tuple[str, str]]:
        """(source, sha256) of the file's attachments stored as ok with the metadata they would be given now: a
        worker need not parse those again."""
        wanted = {**file.metadata, ATTACHED_TO: file.source}
        return frozenset(
            (d.source, d.sha256) for d in self._attachments_of(file.source)
            if d.status == "ok" and _given(d.metadata, d.source[len(file.source) + 1 :]) == wanted
        )

    # -- commit: the only writer ---------------------------------------------------------------------

    def commit(self, prepared: PreparedDocument, report: IngestReport, progress: ProgressSink) -> None:
        """Commit a prepared file (each document in its own transaction) or record its failure, then its
        attachments, each failing alone; a file parsed again drops the attachments it no longer has."""
        file = prepared.file
        plan = self._plans.get(file.source, _Plan(None, True))
        if not prepared.own:  # unchanged, prepared again for its attachments only
            if prepared.failure is not None:
                log.warning("%s: its attachments were not retried: %s", file.source, prepared.failure)
                return
        elif prepared.failure is not None:
            self._fail(file, prepared.fields, prepared.failure, report, progress, transient=prepared.transient)
            if plan.known is not None and not (prepared.transient and _ok(plan.known)):  # not kept: nor its attachments
                self._drop(self._attachments_of(file.source), set(), report, progress)
            return
        elif not plan.hashed and self._same_bytes(plan.known, prepared):  # a URL whose version changed, bytes did not
            _record(FileResult(file.source, "unchanged", chunks=plan.known.chunk_count, document_id=plan.known.id),
                    report, progress)
            return
        else:
            self._put(prepared, replacing=_ok(plan.known), report=report, progress=progress)
            if plan.known is not None:
                keep = {a.file.source for a in prepared.attachments or ()}
                self._drop(self._attachments_of(file.source), keep, report, progress)
        for attachment in prepared.attachments or ():
            name = attachment.file.source[len(file.source) + 1 :]
            needed, known = self._needed(attachment.file, attachment.fields, name, report, progress)
            if not needed:
                continue
            if attachment.unchanged:  # the store's copy changed since the plan: this run did not parse it
                self._fail(attachment.file, attachment.fields, "its stored version changed while it was being ingested;"
                           " ingest it again", report, progress, transient=True)
            elif attachment.failure is not None:
                self._fail(attachment.file, attachment.fields, attachment.failure, report, progress,
                           transient=attachment.transient)
            else:
                self._put(attachment, replacing=_ok(known), report=report, progress=progress)

    def _same_bytes(self, known: DocumentRecord | None, prepared: PreparedDocument) -> bool:
        name = prepared.file.name
        return (_ok(known) and known.sha256 == prepared.fields.sha256
                and _given(known.metadata, name) == prepared.file.metadata)

    def _put(self, prepared: PreparedDocument, *, replacing: bool, report: IngestReport, progress: ProgressSink) -> None:
        """One document in one transaction; a store that went away fails it (a rerun commits it)."""
        n = len(prepared.chunks)
        if prepared.vectors is None or len(prepared.vectors) != n:  # an engine that lost them: never half a document
            self._fail(prepared.file, prepared.fields, "not embedded", report, progress, transient=True)
            return
        try:
            with tracer.start_as_current_span("commit", attributes={"docqa.source": prepared.file.source,
                                                                    "docqa.chunks": n}) as span:
                document_id, _ = self.store.put_document(self.collection, prepared.fields, prepared.chunks,
                                                         prepared.vectors, prepared.sentences)
                span.set_attribute("docqa.document_id", document_id)
        except StorageError as exc:
            _record(FileResult(prepared.file.source, "failed", reason=f"not committed: {exc.detail}"), report, progress)
            return
        _record(FileResult(prepared.file.source, "replaced" if replacing else "ingested", chunks=n,
                           document_id=document_id), report, progress)

    def _drop(
        self, attached: list[DocumentRecord], keep: set[str], report: IngestReport, progress: ProgressSink,
    ) -> None:
        """Delete a file's stored attachments but those in `keep`."""
        for doc in attached:
            if doc.source not in keep:
                self.store.delete_document(self.collection, doc.id)
                _record(FileResult(doc.source, "removed", chunks=doc.chunk_count, document_id=doc.id), report, progress)

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
        """Remove documents under the walked roots whose files (or objects) are gone, not merely left out by a
        --glob; an attachment goes with the file it came in."""
        removed = []
        for doc in self.store.list_documents(self.collection):
            file = _file_of(doc)
            if file in present or not any(sources.under(r, file) for r in roots):
                continue
            if not (sources.exists(file, self.spec.storage_options) if is_url(file) else os.path.isfile(file)):
                self.store.delete_document(self.collection, doc.id)
                result = FileResult(doc.source, "removed", chunks=doc.chunk_count, document_id=doc.id)
                removed.append(result)
                progress.file_done(result)
        return removed


def list_files(
    paths: Sequence[Path | str], globs: Sequence[str], metadata: dict[str, Any], storage_options: dict[str, Any],
) -> list[SourceFile]:
    """The files to ingest under local paths (walked, see `discover`) and URLs (listed through fsspec), each with
    the given metadata."""
    local = [Path(sources.local_path(str(p))) for p in paths if not is_url(str(p))]
    files = [SourceFile(p, str(p), dict(metadata)) for p in discover(local, globs)]
    for target in (str(p) for p in paths if is_url(str(p))):
        for found in sources.list_objects(target, supported_suffixes(), globs, storage_options):
            files.append(SourceFile(None, found.url, dict(metadata), version=found.version))
    return files


def _submit(threads: ThreadPoolExecutor, args: tuple[str, str] | None, spec: PrepareSpec) -> Future | None:
    """One file parsed on a parse thread, in a borrowed parser process (in this thread's context: its span is
    a child of the ingestion's)."""
    return threads.submit(contextvars.copy_context().run, parse_source, *args, spec) if args is not None else None


def remove_document(store: Store, collection: Collection, document: DocumentRecord) -> list[DocumentRecord]:
    """Delete a document and the documents attached to it (an e-mail's attachments); returns what was removed."""
    removed = [document, *_attachments_by_file(store.list_documents(collection)).get(document.source, [])]
    for doc in removed:
        store.delete_document(collection, doc.id)
    return removed


def file_document(store: Store, collection: Collection, document: DocumentRecord) -> DocumentRecord:
    """The document of the file `document` came in: itself, or for an attachment, the file it is attached to."""
    file = _file_of(document)
    if file == document.source:
        return document
    found = store.find_document(collection, file)
    if found is None:
        raise NotFound(f"document {document.id} is an attachment of {file}, which is not in the collection")
    return found


def given_metadata(document: DocumentRecord) -> dict[str, Any]:
    """The metadata that was given when a document was ingested (to ingest its file again with the same)."""
    return _given(document.metadata, SourceFile(None, document.source).name)


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


def _given(metadata: dict[str, Any], name: str) -> dict[str, Any]:
    """The metadata that was given for a stored document: all but what its parser read (the keys it reads, unless
    listed under `overrides`) and what the pipeline adds."""
    overrides = metadata.get("overrides", ())
    read = {k for k in read_from_file(name) if k not in overrides} | set(ADDED)
    return {k: v for k, v in metadata.items() if k not in read}


def _lost(document: DocumentRecord, attached: list[DocumentRecord]) -> bool:
    """Whether one of the attachments a stored file lists is not stored as ok (missing, or failed)."""
    ok = {d.source for d in attached if d.status == "ok"}
    return any(f"{document.source}#{name}" not in ok for name in document.metadata.get(ATTACHMENTS, ()))


def _ok(known: DocumentRecord | None) -> bool:
    return known is not None and known.status == "ok"


def _record(result: FileResult, report: IngestReport, progress: ProgressSink) -> None:
    report.results.append(result)
    progress.file_done(result)


