"""Preparing documents for the store, touching no store: read, hash, parse, chunk, embed.

Everything here takes and gives plain, picklable data, so a worker on any machine can run it: a `PrepareTask`
(which file, what the driver already knows of it) and a `PrepareSpec` (the collection's recorded embedder, the
chunking, limits and OCR options) in, a `PreparedDocument` out. A failure is data too: the document carries its
reason. The commit step (pipeline.py) is the only writer.

Parsing runs in a parser process that is killed past its time limit (isolation.py); chunks are sized by the
embedder's own tokenizer; embedding gives chunk vectors and, from the same forward pass, sentence vectors. A file's
attachments (an e-mail's) are prepared with it, each as a document of its own, `<file source>#<name>`, failing
alone; those the store already holds unchanged are not parsed again (the task lists them).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from typing import Any, Iterable, Sequence

import numpy as np
from opentelemetry import trace

from indexes.embedders import Embedder, EmbedderSpec, SpanEmbedder, build_embedder
from indexes.errors import DocQAError, EmbedderMismatch, LimitExceeded, ParseError
from indexes.types import ChunkInput, DocumentFields
from ingest.chunking import ChunkingOptions, chunk_document, embed_sentence_spans
from ingest.isolation import IngestLimits, ParseInterrupted, ParserProcess, parser_process
from ingest.parsers import ParsedDocument, parser_for
from ingest.parsers.base import Attachment
from ingest.parsers.ocr import OcrOptions

ATTACHED_TO = "attached_to"  # an attachment's metadata key: the source of the file it came in
ATTACHMENTS = "attachments"  # a file's metadata key: the names of its attachments that were ingested
OVERRIDES = "overrides"  # a document's metadata key: the keys given that its parser reads from the file too
OBJECT = "object"  # a document's metadata key, for sources read by URL: the object's version (etag, or mtime and size)
ADDED = (OVERRIDES, ATTACHMENTS, OBJECT)  # the keys the pipeline adds to a document's metadata
tracer = trace.get_tracer("docqa.ingest")


@dataclass(frozen=True)
class SourceFile:
    """One file to ingest: where its bytes are, and the name it is known by in the catalog. With no `path`, the
    source is a URL read through fsspec (ingest/sources.py); `version` is what its listing said of the object (its
    etag, or its mtime and size), to skip an unchanged object without downloading it."""

    path: Path | None
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)
    version: str | None = None

    @property
    def name(self) -> str:
        """The file name its parser is chosen by."""
        return self.path.name if self.path is not None else PurePath(self.source.split("?", 1)[0]).name


@dataclass(frozen=True)
class PrepareSpec:
    """How a collection's documents are prepared, as plain values: the embedder the collection recorded (a worker
    rebuilds exactly that model, and refuses another), chunking, limits and OCR."""

    embedder: dict[str, Any]
    chunking: ChunkingOptions
    limits: IngestLimits = field(default_factory=IngestLimits)
    ocr: OcrOptions = field(default_factory=OcrOptions)
    device: str = "cpu"
    precision: str | None = None  # None: the recorded one
    batch_size: int = 64
    storage_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PrepareTask:
    """One file to prepare. `fields` holds its hash when the driver read it (local files); without them the worker
    reads and hashes the bytes. With `own` false the file is unchanged and only its attachments are wanted;
    `unchanged` lists the (source, sha256) of its attachments the store holds as they are."""

    file: SourceFile
    fields: DocumentFields | None = None
    own: bool = True
    unchanged: frozenset[tuple[str, str]] = frozenset()


@dataclass
class PreparedDocument:
    """A document ready to commit (chunks, and vectors once embedded), or the reason it failed (`failure`; a
    `transient` one, such as a stopped parse, keeps an indexed good version). An unchanged attachment, not parsed,
    has `unchanged` set. `attachments` is None where the file was not parsed."""

    file: SourceFile
    fields: DocumentFields
    chunks: list[ChunkInput] = field(default_factory=list)
    failure: str | None = None
    transient: bool = False
    own: bool = True
    unchanged: bool = False
    attachments: list["PreparedDocument"] | None = None
    vectors: np.ndarray | None = None
    sentences: list[np.ndarray | None] | None = None

    def documents(self) -> list["PreparedDocument"]:
        """This document (if it is wanted) and its attachments: everything the commit writes."""
        return ([self] if self.own else []) + list(self.attachments or ())

    def to_embed(self) -> list["PreparedDocument"]:
        """The documents whose chunks still need vectors."""
        return [d for d in self.documents() if d.chunks and d.failure is None and d.vectors is None]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def local_fields(file: SourceFile) -> DocumentFields:
    """A local file's hash, size and mtime with its given metadata; OSError if it cannot be read."""
    assert file.path is not None
    stat = file.path.stat()
    return DocumentFields(file.source, sha256_file(file.path), stat.st_size, stat.st_mtime, metadata=file.metadata)


# -- one process's embedder -----------------------------------------------------------------------

_embedders: dict[tuple, Embedder] = {}
_embedders_lock = threading.Lock()


def embedder_for(spec: PrepareSpec) -> Embedder:
    """The embedder the spec's collection recorded, built once per process from the record alone
    (`EmbedderSpec.from_identity`); EmbedderMismatch if what loads here is not that model (another revision behind
    the same name, another window or dimension)."""
    built = EmbedderSpec.from_identity(spec.embedder, device=spec.device, batch_size=spec.batch_size,
                                       precision=spec.precision)
    key = (built.backend, built.model, built.precision, built.device)
    with _embedders_lock:
        if key not in _embedders:
            embedder = build_embedder(built)
            differing = embedder.identity.mismatches(spec.embedder)
            if differing:
                details = ", ".join(f"{k}: {spec.embedder.get(k)!r} vs {getattr(embedder.identity, k)!r}"
                                    for k in differing)
                raise EmbedderMismatch(f"this worker's embedder is not the collection's ({details})")
            _embedders[key] = embedder
        return _embedders[key]


# -- prepare ----------------------------------------------------------------------------------------

def prepare(task: PrepareTask, spec: PrepareSpec, embedder: Embedder | None = None) -> PreparedDocument:
    """A file read, hashed, parsed, chunked and embedded, with its attachments; touches no store."""
    embedder = embedder or embedder_for(spec)
    document = prepare_unembedded(task, spec, embedder)
    embed_prepared([document], embedder)
    return document


def prepare_unembedded(
    task: PrepareTask, spec: PrepareSpec, embedder: Embedder | None = None, *,
    parsed: ParsedDocument | BaseException | None = None, parser: ParserProcess | None = None,
) -> PreparedDocument:
    """A file prepared but for its vectors. `parsed` is its parse when the caller already has it (the local engine
    parses ahead in a pool); otherwise it is parsed here, in `parser` or a borrowed parser process."""
    embedder = embedder or embedder_for(spec)
    file = task.file
    read = read_task(task, spec)
    if isinstance(read, PreparedDocument):
        return read
    task, data = read
    fields = task.fields
    assert fields is not None
    if parsed is None:
        target: str | bytes = data if data is not None else str(file.path)
        parsed = parse_source(target, file.name, spec, parser)
    if isinstance(parsed, BaseException):
        return PreparedDocument(file, fields, failure=_reason(parsed), transient=isinstance(parsed, ParseInterrupted),
                                own=task.own)
    attachments = _attachments(file, parsed)
    prepared = PreparedDocument(file, fields, own=task.own)
    if task.own:
        try:
            prepared.chunks, prepared.fields = _chunked(fields, parsed, file.name, attachments, embedder, spec)
        except DocQAError as exc:
            prepared.failure = exc.detail
            return prepared
    prepared.attachments = list(_prepared_attachments(attachments, fields.mtime, task.unchanged, embedder, spec,
                                                      parser))
    return prepared


def read_task(task: PrepareTask, spec: PrepareSpec) -> tuple[PrepareTask, bytes | None] | PreparedDocument:
    """The task with its file's hash, and the bytes to parse: a URL's are read here, where the task runs (None for
    a local file, which its parser reads from disk). A file that cannot be read gives its failure instead."""
    if task.fields is not None:
        return task, None
    file = task.file
    try:
        data, fields = _read(file, spec)
    except (OSError, DocQAError) as exc:
        reason = exc.detail if isinstance(exc, DocQAError) else f"cannot read file: {exc.strerror or exc}"
        return PreparedDocument(file, DocumentFields(file.source, "", 0, metadata=file.metadata), failure=reason,
                                transient=not isinstance(exc, LimitExceeded), own=task.own)
    return replace(task, fields=fields), data


def embed_prepared(documents: Sequence[PreparedDocument], embedder: Embedder) -> int:
    """Give every chunk of these documents (and their attachments) its vector and sentence vectors, in one batch;
    returns how many chunks were embedded."""
    todo = [d for doc in documents for d in doc.to_embed()]
    chunks = [c for d in todo for c in d.chunks]
    if not chunks:
        return 0
    texts = [c.embed_text for c in chunks]
    with tracer.start_as_current_span("embed", attributes={"docqa.chunks": len(chunks), "docqa.documents": len(todo)}):
        if isinstance(embedder, SpanEmbedder):
            vectors, sentences = embedder.embed_documents_with_spans(texts, [embed_sentence_spans(c) for c in chunks])
        else:
            vectors, sentences = embedder.embed_documents(texts), [None] * len(texts)
    offset = 0
    for d in todo:
        n = len(d.chunks)
        d.vectors, d.sentences = vectors[offset : offset + n], list(sentences[offset : offset + n])
        offset += n
    return len(chunks)


def _read(file: SourceFile, spec: PrepareSpec) -> tuple[bytes | None, DocumentFields]:
    """Hash the file: a local one from disk (the parser reads it there), a URL's bytes through fsspec."""
    if file.path is not None:
        return None, local_fields(file)
    from ingest.sources import read_bytes

    data = read_bytes(file.source, spec.limits.max_file_bytes, spec.storage_options)
    metadata = {**file.metadata, OBJECT: {"version": file.version}} if file.version else dict(file.metadata)
    fields = DocumentFields(file.source, hashlib.sha256(data).hexdigest(), len(data), None, metadata=metadata)
    return data, fields


def parse_source(
    target: str | bytes, name: str, spec: PrepareSpec, parser: ParserProcess | None = None,
) -> ParsedDocument | DocQAError:
    """The file at `target` (or these bytes) parsed in `parser`, or in a borrowed parser process killed past the
    time limit; the error that stopped it otherwise."""
    with tracer.start_as_current_span("parse", attributes={"docqa.file": name}) as span:
        if parser is not None:
            parsed = parser.parse(target, name, spec.limits, spec.ocr)
        else:
            with parser_process() as borrowed:
                parsed = borrowed.parse(target, name, spec.limits, spec.ocr)
        if isinstance(parsed, BaseException):
            span.set_status(trace.Status(trace.StatusCode.ERROR, _reason(parsed)))
        else:
            span.set_attributes({"docqa.pages": parsed.pages or 0, "docqa.ocr_pages": len(parsed.ocr_pages)})
        return parsed


def _attachments(file: SourceFile, document: ParsedDocument) -> list[tuple[SourceFile, Attachment]]:
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
            found.append((SourceFile(file.path, f"{file.source}#{name}", metadata), Attachment(name, attachment.data)))
    return found


def _prepared_attachments(
    attachments: list[tuple[SourceFile, Attachment]], mtime: float | None, unchanged: frozenset[tuple[str, str]],
    embedder: Embedder, spec: PrepareSpec, parser: ParserProcess | None,
) -> Iterable[PreparedDocument]:
    """Each attachment, unless unchanged, parsed in a parser process and chunked like a file; it fails alone."""
    for file, attachment in attachments:
        digest = hashlib.sha256(attachment.data).hexdigest()
        fields = DocumentFields(file.source, digest, len(attachment.data), mtime, metadata=file.metadata)
        if (file.source, digest) in unchanged:
            yield PreparedDocument(file, fields, unchanged=True)
            continue
        parsed = parse_source(attachment.data, attachment.name, spec, parser)
        if isinstance(parsed, BaseException):
            yield PreparedDocument(file, fields, failure=_reason(parsed), transient=isinstance(parsed, ParseInterrupted))
            continue
        _attachments(file, parsed)  # notes that its own are not ingested
        prepared = PreparedDocument(file, fields)
        try:
            prepared.chunks, prepared.fields = _chunked(fields, parsed, attachment.name, (), embedder, spec)
        except DocQAError as exc:
            prepared.failure = exc.detail
        yield prepared


def _chunked(
    fields: DocumentFields, document: ParsedDocument, name: str, attachments: Sequence[tuple[SourceFile, Attachment]],
    embedder: Embedder, spec: PrepareSpec,
) -> tuple[list[ChunkInput], DocumentFields]:
    """The document's chunks and what is stored with it: metadata read from the file under the given metadata,
    with the given keys that override it (`overrides`) and the names of its attachments (`attachments`)."""
    title = document.title or PurePath(name).stem
    with tracer.start_as_current_span("chunk", attributes={"docqa.file": name}) as span:
        chunks = chunk_document(document, embedder.count_tokens, spec.chunking, title=title)
        span.set_attribute("docqa.chunks", len(chunks))
    if not chunks:
        raise ParseError("no text to index after chunking")
    if len(chunks) > spec.limits.max_chunks:
        raise LimitExceeded(f"too many chunks: {len(chunks)} (limit {spec.limits.max_chunks})")
    given = fields.metadata or {}
    metadata = {**document.metadata, **given}
    if overrides := sorted(k for k in given if k in read_from_file(name)):
        metadata[OVERRIDES] = overrides
    if attachments:
        metadata[ATTACHMENTS] = [a.name for _, a in attachments]
    fields = DocumentFields(
        fields.source, fields.sha256, fields.size, fields.mtime, title=title, metadata=metadata,
        pages=document.pages, warnings=tuple(document.warnings), text=document.text,
        ocr_pages=tuple(document.ocr_pages),
    )
    return chunks, fields


def read_from_file(name: str) -> tuple[str, ...]:
    """The metadata keys the parser of `name` may read from the file."""
    return tuple(getattr(parser_for(name), "metadata_keys", ()))


def _unique(name: str, taken: set[str]) -> str:
    """`name`, or "stem (2).ext", "stem (3).ext"… if it is taken; the result is taken from then on."""
    path, candidate, n = PurePath(name), name, 1
    while candidate in taken:
        n += 1
        candidate = f"{path.stem} ({n}){path.suffix}"
    taken.add(candidate)
    return candidate


def _reason(exc: BaseException) -> str:
    """A one-line reason for a failure, without a traceback."""
    if isinstance(exc, DocQAError):
        return exc.detail
    return f"{type(exc).__name__}: {exc}"
