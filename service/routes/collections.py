"""Collections and their documents: create, list, get, delete; upload and re-ingest (202 + job); download the source."""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Any, Sequence

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from indexes.errors import InvalidInput, NotFound
from indexes.locators import locator_label
from indexes.types import Collection, DocumentRecord
from ingest.pipeline import (
    IngestPipeline, IngestReport, ProgressSink, SourceFile, discover, file_document, given_metadata, remove_document,
    sha256_file,
)
from ingest.sample import sample_texts
from service.auth import Principal
from service.context import ServiceContext, get_context, get_principal
from service.routes.formats import formats_sentence
from service.schemas import (
    ChunkOut, CollectionCreate, CollectionOut, DocumentDetail, DocumentOut, JobOut, PathIngest, Problem, RowId,
)
from service.uploads import resolve_server_path, store_uploads

router = APIRouter(prefix="/v1", tags=["collections"])

NOT_FOUND = {404: {"model": Problem, "description": "Unknown collection or document"}}


def collection_out(ctx: ServiceContext, c: Collection) -> CollectionOut:
    """A collection with its counts."""
    return CollectionOut(name=c.name, description=c.description, embedder=c.embedder, created_at=c.created_at,
                         **ctx.store.counts(c))


def document_out(d: DocumentRecord) -> dict[str, Any]:
    """A document record as the API shows it."""
    return dict(id=d.id, source=d.source, title=d.title, status=d.status, error=d.error, warnings=d.warnings,
                metadata=d.metadata, pages=d.pages, ocr_pages=d.ocr_pages, chunks=d.chunk_count, sha256=d.sha256, size=d.size,
                created_at=d.created_at, updated_at=d.updated_at)


@router.get("/collections", response_model=list[CollectionOut], summary="List collections")
def list_collections(ctx: ServiceContext = Depends(get_context), principal: Principal = Depends(get_principal)) -> list[CollectionOut]:
    """The collections the caller may read."""
    return [collection_out(ctx, c) for c in ctx.store.list_collections() if principal.can_read(c.name)]


@router.post("/collections", response_model=CollectionOut, status_code=201, summary="Create a collection",
             responses={409: {"model": Problem, "description": "Name taken"}})
def create_collection(body: CollectionCreate, ctx: ServiceContext = Depends(get_context),
                      principal: Principal = Depends(get_principal)) -> CollectionOut:
    """A new, empty collection embedded by the configured model."""
    principal.require_admin()
    embedder = ctx.store.embedder_for_spec(ctx.settings.embedder.spec())
    return collection_out(ctx, ctx.store.create_collection(body.name, embedder.identity.as_dict(), body.description))


@router.get("/collections/{name}", response_model=CollectionOut, responses=NOT_FOUND, summary="Get a collection")
def get_collection(name: str, ctx: ServiceContext = Depends(get_context), principal: Principal = Depends(get_principal)) -> CollectionOut:
    """One collection with its counts."""
    return collection_out(ctx, ctx.collection(name, principal))


@router.delete("/collections/{name}", status_code=204, responses=NOT_FOUND, summary="Delete a collection")
def delete_collection(name: str, ctx: ServiceContext = Depends(get_context), principal: Principal = Depends(get_principal)) -> Response:
    """Delete a collection with all its documents."""
    ctx.collection(name, principal)
    principal.require_admin()
    ctx.store.delete_collection(name)
    return Response(status_code=204)


@router.get("/collections/{name}/documents", response_model=list[DocumentOut], responses=NOT_FOUND, summary="List documents")
def list_documents(name: str, status: str | None = None, ctx: ServiceContext = Depends(get_context),
                   principal: Principal = Depends(get_principal)) -> list[dict[str, Any]]:
    """Documents of a collection (optionally only `ok` or `failed`)."""
    if status not in (None, "ok", "failed"):
        raise InvalidInput(f"status must be 'ok' or 'failed', got {status!r}")
    collection = ctx.collection(name, principal)
    return [document_out(d) for d in ctx.store.list_documents(collection, status)]


@router.get("/collections/{name}/documents/{document_id}", response_model=DocumentDetail, responses=NOT_FOUND,
            summary="Get a document with its chunks")
def get_document(name: str, document_id: RowId, ctx: ServiceContext = Depends(get_context),
                 principal: Principal = Depends(get_principal)) -> dict[str, Any]:
    """A document and its chunks, in order."""
    collection = ctx.collection(name, principal)
    document = ctx.store.get_document(document_id, collection)
    chunks = [ChunkOut(**c, locator_label=locator_label(c["locator"])) for c in ctx.store.document_chunks(document.id)]
    return {**document_out(document), "chunk_list": chunks}


@router.delete("/collections/{name}/documents/{document_id}", status_code=204, responses=NOT_FOUND, summary="Delete a document")
def delete_document(name: str, document_id: RowId, ctx: ServiceContext = Depends(get_context),
                    principal: Principal = Depends(get_principal)) -> Response:
    """Remove a document and its attachments (an e-mail's); none is ever cited again."""
    principal.require_write(name)
    collection = ctx.collection(name, principal)
    remove_document(ctx.store, collection, ctx.store.get_document(document_id, collection))
    return Response(status_code=204)


def source_path(ctx: ServiceContext, collection: Collection, document: DocumentRecord) -> Path:
    """The stored file of a document: its upload, or the ingested file if it is still the same bytes."""
    upload = ctx.settings.data_dir / "uploads" / str(collection.id) / str(document.sha256) / document.source
    if upload.is_file():
        return upload
    path = Path(document.source)
    if path.is_absolute() and path.is_file() and sha256_file(path) == document.sha256:
        return path
    raise NotFound(f"the source file of document {document.id} is not available")


@router.get("/collections/{name}/documents/{document_id}/file", responses={**NOT_FOUND, 200: {"content": {"application/octet-stream": {"example": "%PDF-1.7 … (the stored file's bytes)"}}}},
            response_class=FileResponse, summary="Download the source document")
def download(name: str, document_id: RowId, ctx: ServiceContext = Depends(get_context),
             principal: Principal = Depends(get_principal)) -> FileResponse:
    """The original file; PDFs open inline (append #page=N to jump to a page)."""
    collection = ctx.collection(name, principal)
    document = ctx.store.get_document(document_id, collection)
    path = source_path(ctx, collection, document)
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    disposition = "inline" if media in ("application/pdf", "text/plain", "text/markdown") else "attachment"
    return FileResponse(path, media_type=media, filename=path.name, content_disposition_type=disposition)


def _runner(ctx: ServiceContext, collection: Collection, sync_roots: Sequence[Path] = (), reparse: bool = False) -> Any:
    limits = ctx.settings.limits.per_file()

    def run(files: Sequence[SourceFile], progress: ProgressSink) -> IngestReport:
        # `auto`: a collection created empty takes its embedder from the language of its first documents
        target = ctx.store.choose_embedder(ctx.store.get_collection(collection.name), lambda: sample_texts(files, limits))
        pipeline = IngestPipeline(ctx.store, target, limits=limits, ocr=ctx.settings.ocr.options(), workers=0)
        report = pipeline.ingest(files, progress, reparse=reparse)
        if sync_roots:
            roots = [str(r) for r in sync_roots]
            report.results += pipeline.prune(roots, {f.source for f in files}, progress)
        ctx.metrics.observe_ingest(report.results)
        return report

    return run


def _metadata(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"metadata must be a JSON object: {exc.msg}") from None
    if not isinstance(value, dict):
        raise InvalidInput("metadata must be a JSON object")
    return value


@router.post(
    "/collections/{name}/documents", response_model=JobOut, status_code=202, summary="Upload documents (ingested in the background)",
    responses={**NOT_FOUND, 413: {"model": Problem, "description": "Upload too large"},
               415: {"model": Problem, "description": "Unsupported file type"}, 503: {"model": Problem, "description": "Too many jobs queued"}},
)
async def upload(
    name: str,
    files: list[UploadFile] = File(..., description=f"One or more files: {formats_sentence()}; GET /v1/formats lists them.",
                                   examples=[["handbook.md", "atlas-report.pdf"]]),
    metadata: str | None = Form(None, description='JSON object stored with each document, e.g. {"team": "infra"}.',
                                examples=['{"team": "infra"}']),
    ctx: ServiceContext = Depends(get_context),
    principal: Principal = Depends(get_principal),
) -> dict[str, Any]:
    """Store the files and start an ingestion job; poll GET /v1/jobs/{id}."""
    principal.require_write(name)
    collection = await run_in_threadpool(ctx.collection, name, principal)
    if len(files) > ctx.settings.limits.max_files_per_upload:
        raise InvalidInput(f"{len(files)} files in one upload; the limit is {ctx.settings.limits.max_files_per_upload}")
    extra = _metadata(metadata)
    root = ctx.settings.data_dir / "uploads" / str(collection.id)
    stored = await store_uploads(files, root, ctx.settings.limits.max_upload_bytes)
    sources = [SourceFile(path, name_, extra) for name_, path in stored]
    # submit writes the job row: off the event loop, which must not wait on the store's write lock
    return await run_in_threadpool(ctx.jobs.submit, collection.name, sources, _runner(ctx, collection))


@router.post("/collections/{name}/documents/from-path", response_model=JobOut, status_code=202,
             summary="Ingest a server-side folder or file (only under configured roots)",
             responses={**NOT_FOUND, 403: {"model": Problem, "description": "Path ingestion disabled or outside the roots"}})
def ingest_path(name: str, body: PathIngest, ctx: ServiceContext = Depends(get_context),
                principal: Principal = Depends(get_principal)) -> dict[str, Any]:
    """Same pipeline as `docqa ingest PATH`: unchanged files skipped, `sync` prunes documents whose files are gone."""
    principal.require_write(name)
    collection = ctx.collection(name, principal)
    path = resolve_server_path(body.path, ctx.settings.server_paths)
    sources = [SourceFile(p, str(p), dict(body.metadata)) for p in discover([path])]
    return ctx.jobs.submit(collection.name, sources, _runner(ctx, collection, [path] if body.sync else []))


@router.post("/collections/{name}/documents/{document_id}/reingest", response_model=JobOut, status_code=202,
             summary="Ingest a document again from its stored file (in the background)",
             responses={404: {"model": Problem, "description": "Unknown collection or document, or its file is not stored"},
                        403: {"model": Problem, "description": "The key may not change the collection"},
                        503: {"model": Problem, "description": "Too many jobs queued"}})
def reingest(name: str, document_id: RowId, ctx: ServiceContext = Depends(get_context),
             principal: Principal = Depends(get_principal)) -> dict[str, Any]:
    """Parse, chunk and embed the document's stored file again, even if unchanged (a failed one, or one read before a
    parser or OCR change), with the metadata it was given; an attachment's whole file is ingested again. Poll GET
    /v1/jobs/{id}: the file ends `replaced`, or `failed` with its reason."""
    principal.require_write(name)
    collection = ctx.collection(name, principal)
    document = file_document(ctx.store, collection, ctx.store.get_document(document_id, collection))
    source = SourceFile(source_path(ctx, collection, document), document.source, given_metadata(document))
    return ctx.jobs.submit(collection.name, [source], _runner(ctx, collection, reparse=True))
