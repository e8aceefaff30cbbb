"""create_app(settings): the FastAPI application — lifespan, middleware, routers, the one error handler."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from indexes.embedders import Embedder
from indexes.errors import Conflict
from indexes.backends import open_store, redacted
from indexes.store import Embedders
from service.answer import Answerer
from service.context import ServiceContext
from service.feedback import AnswerLog
from service.generators.registry import GeneratorRegistry
from service.jobs import JobRunner
from service.keys import KeyStore, authenticator
from service.mcp_server import http_endpoint
from service.metrics import Metrics
from service.middleware import BodyLimitMiddleware, ConcurrencyLimitMiddleware, RequestContextMiddleware
from service.problems import install_problem_handlers
from service.rerankers import build_reranker
from service.retrieval import RetrievalPipeline
from service.chat import ConversationStore
from service.routes import answers as answer_routes
from service.routes import ask, collections, conversations, formats, health, jobs, keys, openai_chat
from service.settings import Settings
from service.tracing import configure_tracing, instrument

log = logging.getLogger("docqa.service")
STATIC_DIR = Path(__file__).parent / "static"

DESCRIPTION = """Ask questions over your documents and get answers that cite the passages they come from
(document, page, passage) — or an honest "not in the documents"."""


def build_context(settings: Settings) -> ServiceContext:
    """Open the data directory and build the shared services (fails fast on an unusable data dir)."""
    import torch

    torch.set_num_threads(settings.embedder.torch_threads)  # FAISS: one thread per query, in VectorIndex.search
    store = open_store(settings.store.url, settings.data_dir, embedders=Embedders(settings.embedder.spec()),
                       options=settings.store.options())
    limits = settings.limits
    pipeline = RetrievalPipeline(store, settings.retrieval, build_reranker(settings.reranker), settings.reranker.candidates)
    answerer = Answerer(store, GeneratorRegistry(settings.generator), settings.retrieval, settings.abstention,
                        limits.max_question_chars, limits.max_top_k, pipeline)
    metrics = Metrics()
    metrics.watch_index(lambda: {c.name: store.counts(c) for c in store.list_collections()})
    jobs = JobRunner(store.records.jobs, limits.max_concurrent_jobs, metrics=metrics)
    answers = AnswerLog(store.records.answers, settings.feedback.enabled, settings.feedback.keep_days)
    return ServiceContext(settings, store, answerer, jobs, metrics, ConversationStore(store.records.conversations),
                          KeyStore(store.records.keys), answers)


def _ensure_default_collection(ctx: ServiceContext, embedder: Embedder) -> None:
    """The API defaults to `default_collection`, so a fresh data dir gets it (never re-checked against the model)."""
    name = ctx.settings.default_collection
    if ctx.store.find_collection(name) is None:
        try:
            ctx.store.create_collection(name, embedder.identity.as_dict())
        except Conflict:  # another worker created it first
            pass


def _warm_up(ctx: ServiceContext) -> None:
    """Load the embedding model (and the default collection's vectors) so the first question is fast."""
    try:
        default_embedder = ctx.store.embedder_for_spec(ctx.settings.embedder.spec())
        _ensure_default_collection(ctx, default_embedder)
        for collection in ctx.store.list_collections():
            ctx.store.embedder(collection).identity
            ctx.store.warm_up(collection)
        try:
            ctx.answerer.pipeline.warm_up()
        except Exception as exc:  # noqa: BLE001 - questions still get the fused order, each with a warning
            log.warning("re-ranker failed to load", extra={"error": f"{type(exc).__name__}: {exc}"})
        ctx.ready.set()
        log.info("ready", extra={"store": redacted(ctx.store.url)})
    except Exception as exc:  # noqa: BLE001 - reported by /readyz
        ctx.startup_error = f"{type(exc).__name__}: {exc}"
        log.exception("start-up failed")


def create_app(settings: Settings) -> FastAPI:
    """The application, built from settings read once at the edge (`docqa serve`); traced if OTEL_* say so."""
    configure_tracing()
    ctx = build_context(settings)
    mcp = http_endpoint(ctx)  # the MCP server over Streamable HTTP at /mcp (service/mcp_server.py)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=_warm_up, args=(ctx,), name="docqa-warm-up", daemon=True).start()
        async with mcp.run():  # the MCP SDK's session manager lives as long as the app
            yield
        ctx.jobs.shutdown()
        ctx.store.flush()
        ctx.store.close()

    app = FastAPI(title="docqa", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.docqa = ctx
    if settings.auth.enabled:
        app.state.authenticate = authenticator(ctx.keys)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def chat_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/admin", include_in_schema=False)
    def admin_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "admin.html")

    app.add_route("/mcp", mcp, include_in_schema=False)
    install_problem_handlers(app)
    for router in (ask.router, collections.router, formats.router, jobs.router, conversations.router, openai_chat.router,
                   keys.router, health.router):
        app.include_router(router)
    app.include_router(answer_routes.router)
    # Outermost first at run time: request id + logging, then load shedding, then body limits.
    app.add_middleware(BodyLimitMiddleware, default_limit=settings.limits.max_request_bytes,
                       upload_limit=settings.limits.max_upload_bytes * settings.limits.max_files_per_upload)
    app.add_middleware(ConcurrencyLimitMiddleware, limit=settings.limits.max_concurrent_requests, metrics=ctx.metrics,
                       answer_limit=settings.limits.max_concurrent_answers, queue=settings.limits.max_queued_requests,
                       queue_seconds=settings.limits.queue_seconds)
    app.add_middleware(RequestContextMiddleware, metrics=ctx.metrics, routes=app.router.routes)
    instrument(app)
    return app
