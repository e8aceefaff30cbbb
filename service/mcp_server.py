"""The Model Context Protocol server: docqa's search, answers and documents as tools and resources for agents
(Claude Desktop, VS Code, Cursor, any MCP client), with the official `mcp` SDK.

One server, two transports: stdio (`docqa mcp`, a local agent's own subprocess) and Streamable HTTP at /mcp
(`docqa serve`). Both go through the REST API's ServiceContext — the one retrieval pipeline, the answerer, the
store — and return the REST API's wire models. Over HTTP each request is authenticated like a REST request
(`service/context.py` get_principal) and sees only the collections its key may read, with the same "not found"
for a collection it may not read as for one that does not exist; over stdio the caller is the local user, with
the rights of the process (an all-access admin, as the REST API with auth off).

Tools: `search`, `ask`, `list_collections`, `get_document`; resources: `docqa://<collection>/<document_id>` (the
document's text). A DocQAError becomes a tool error (or a resource error) carrying its detail; the service stays up.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Annotated, Any, AsyncIterator, Callable, Iterator, Literal

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ListResourcesResult, PaginatedRequestParams, Resource, ToolAnnotations
from pydantic import Field
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from indexes.errors import DocQAError, NotFound
from indexes.filters import Filters
from indexes.locators import locator_label
from service.answer import AskRequest
from service.auth import ANONYMOUS_ADMIN, Principal
from service.context import ServiceContext, get_principal
from service.errors import Unauthorized
from service.problems import logged_problem, problem_response
from service.routes.ask import answer_response, hit_out, record, to_filters
from service.routes.collections import collection_out, document_out
from service.schemas import COLLECTION_NAME, AskResponse, ChunkOut, CollectionOut, DocumentDetail, SearchResponse

if TYPE_CHECKING:
    from service.settings import Settings

log = logging.getLogger("docqa.mcp")

PRINCIPAL = "docqa.principal"  # where the HTTP endpoint leaves the caller, in the ASGI scope of its request
URI_TEMPLATE = "docqa://{collection}/{document_id}"
RESOURCES_PAGE = 500  # documents per resources/list page
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)

INSTRUCTIONS = """docqa answers questions over a team's own documents, citing the passages it used.
Call list_collections to see which collections you may read, then search (ranked passages) or ask (an answer
with numbered citations, or an abstention with its reason when the documents hold no answer). A passage's
document is the resource docqa://<collection>/<document_id>; get_document gives its chunks and where each sits."""

CollectionArg = Annotated[str | None, Field(pattern=COLLECTION_NAME,
                                      description="The collection (default: the service's default collection).")]
FiltersArg = Annotated[Filters | None, Field(description="Restrict retrieval before ranking, as in POST /v1/search.")]
ModeArg = Annotated[Literal["dense", "lexical", "hybrid"] | None,
                    Field(description="Retrieval mode (default: the service's, usually hybrid).")]


def resource_uri(collection: str, document_id: int) -> str:
    """The resource URI of a document."""
    return f"docqa://{collection}/{document_id}"


@contextmanager
def _as_tool_error() -> Iterator[None]:
    """A DocQAError (unknown collection or document, bad filter, limits) as the tool error the caller reads."""
    try:
        yield
    except DocQAError as exc:
        raise ToolError(exc.detail) from exc


class DocqaMCP(MCPServer):
    """The MCP server over one ServiceContext; `local` (stdio) callers are the process itself, all-access.

    Over HTTP a request without a principal in its scope is refused (fail closed): only the /mcp endpoint,
    which authenticates first, puts one there."""

    def __init__(self, ctx: ServiceContext, *, local: bool,
                 lifespan: Callable[[Any], AbstractAsyncContextManager[Any]] | None = None) -> None:
        super().__init__("docqa", title="docqa", version="0.1.0", instructions=INSTRUCTIONS, lifespan=lifespan)
        self.ctx = ctx
        self.local = local
        self._register()

    def principal(self, request: Request | None) -> Principal:
        """Who is calling: the request's authenticated principal (HTTP), or the local process (stdio)."""
        if request is None:
            if self.local:
                return ANONYMOUS_ADMIN
            raise Unauthorized("an API key is required (Authorization: Bearer <key>)")
        found = request.scope.get(PRINCIPAL)
        if not isinstance(found, Principal):
            raise Unauthorized("an API key is required (Authorization: Bearer <key>)")
        return found

    def caller(self, context: Context) -> Principal:
        """The principal of the request a tool or resource is serving."""
        return self.principal(context.request_context.request)

    async def _handle_list_resources(self, ctx: Any, params: PaginatedRequestParams | None) -> ListResourcesResult:
        # The SDK lists only static resources; docqa's are the documents the caller may read, a page at a time.
        principal = self.principal(ctx.request)
        cursor = params.cursor if params is not None else None
        start = int(cursor) if cursor and cursor.isdigit() else 0
        resources = await anyio.to_thread.run_sync(self.readable_documents, principal)
        page = resources[start:start + RESOURCES_PAGE]
        more = start + RESOURCES_PAGE < len(resources)
        return ListResourcesResult(resources=page, next_cursor=str(start + RESOURCES_PAGE) if more else None)

    def readable_documents(self, principal: Principal) -> list[Resource]:
        """Every ingested document of every collection the caller may read, as a resource."""
        store = self.ctx.store
        return [
            Resource(uri=resource_uri(c.name, d.id), name=d.title or d.source, title=d.title, description=d.source,
                     mime_type="text/plain", size=d.size)
            for c in store.list_collections() if principal.can_read(c.name)
            for d in store.list_documents(c, "ok")
        ]

    def _register(self) -> None:
        ctx = self.ctx

        @self.tool(annotations=READ_ONLY, structured_output=True)
        def search(
            query: Annotated[str, Field(min_length=1, description="What to look for.")],
            context: Context,
            collection: CollectionArg = None,
            k: Annotated[int | None, Field(ge=1, description="How many passages (default: the service's top_k).")] = None,
            filters: FiltersArg = None,
            mode: ModeArg = None,
        ) -> SearchResponse:
            """Ranked passages for a query from one collection, best first: each with its document (id, title,
            source), where it sits (locator: page, slide, sheet and rows, chapter), its text and its score."""
            with _as_tool_error():
                target = ctx.collection(collection, self.caller(context))
                request = AskRequest(query, target, k, to_filters(filters), mode=mode)
                ctx.answerer.validate(request)
                retrieved = ctx.answerer.retrieve(request)
            ctx.metrics.retrieval.observe(retrieved.timings["retrieval_ms"] / 1000)
            return SearchResponse(query=query, mode=mode or ctx.settings.retrieval.mode,
                                  hits=[hit_out(h) for h in retrieved.hits], timings=retrieved.timings,
                                  warnings=retrieved.warnings)

        @self.tool(annotations=READ_ONLY, structured_output=True)
        def ask(
            question: Annotated[str, Field(min_length=1, description="The question, in the documents' language.")],
            context: Context,
            collection: CollectionArg = None,
            filters: FiltersArg = None,
            generator: Annotated[str | None, Field(description="extractive, openai, llamacpp or bedrock (among those enabled; default: the service's).")] = None,
        ) -> AskResponse:
            """Answer a question from one collection's documents with numbered citations [n], each citation's
            passage checked against the answer; or abstain (abstained: true) with the reason, when the
            documents hold no answer."""
            with _as_tool_error():
                caller = self.caller(context)
                target = ctx.collection(collection, caller)
                request = AskRequest(question, target, None, to_filters(filters), generator)
                ctx.answerer.check(request)
                answer = ctx.answerer.ask(request)
            record(ctx, answer)
            ctx.answers.record(answer, target.name, caller, "mcp")  # its answer_id takes feedback, as over REST
            return answer_response(answer)

        @self.tool(annotations=READ_ONLY, structured_output=True)
        def list_collections(context: Context) -> list[CollectionOut]:
            """The collections you may read, with their document, chunk and failure counts."""
            with _as_tool_error():
                principal = self.caller(context)
                return [collection_out(ctx, c) for c in ctx.store.list_collections() if principal.can_read(c.name)]

        @self.tool(annotations=READ_ONLY, structured_output=True)
        def get_document(
            collection: Annotated[str, Field(pattern=COLLECTION_NAME, description="The document's collection.")],
            document_id: Annotated[int, Field(ge=1, le=2**63 - 1, description="The document's id (document_id of a passage).")],
            context: Context,
        ) -> DocumentDetail:
            """A document's record (source, title, status, pages, size, metadata) and its chunks in order, each
            with where it sits; its full text is the resource docqa://<collection>/<document_id>."""
            with _as_tool_error():
                target = ctx.collection(collection, self.caller(context))
                document = ctx.store.get_document(document_id, target)
                chunks = [ChunkOut(**c, locator_label=locator_label(c["locator"]))
                          for c in ctx.store.document_chunks(document.id)]
            return DocumentDetail(**document_out(document), chunk_list=chunks)

        @self.resource(URI_TEMPLATE, name="document", title="A document's text", mime_type="text/plain")
        def document(collection: str, document_id: str, context: Context) -> str:
            """The full text of an ingested document, as it was parsed (what its passages are cut from)."""
            try:
                if not document_id.isdigit():
                    raise NotFound(f"document {document_id!r} not found")
                target = ctx.collection(collection, self.caller(context))
                return ctx.store.document_text(ctx.store.get_document(int(document_id), target).id)
            except NotFound as exc:
                raise ResourceNotFoundError(exc.detail) from exc
            except DocQAError as exc:
                raise ResourceError(exc.detail) from exc


class HttpEndpoint:
    """/mcp: Streamable HTTP, authenticated per request exactly like the REST API, then served by the SDK's
    session manager. Stateless (no session held between requests), so any `docqa serve` worker can answer any
    request; JSON responses (docqa's tools report no progress, so nothing needs a stream)."""

    def __init__(self, server: DocqaMCP, max_request_bytes: int) -> None:
        self.server, self.max_request_bytes = server, max_request_bytes
        self.sessions, self._ran = self._session_manager(), False

    def _session_manager(self) -> Any:
        # The Starlette app it returns is not used: it made the session manager, which this endpoint drives. No
        # DNS-rebinding check (the SDK's default on loopback hosts): the REST API beside it has none either and
        # deployments reach it by their own host names; keys guard it when auth is on.
        self.server.streamable_http_app(
            stateless_http=True, json_response=True, max_request_body_size=self.max_request_bytes,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        return self.server.session_manager

    def run(self) -> AbstractAsyncContextManager[None]:
        """The session manager's task group, for one run of the app's lifespan: a manager runs only once, so an
        app started again (tests, an ASGI server's reload) gets a fresh one."""
        if self._ran:
            self.sessions = self._session_manager()
        self._ran = True
        return self.sessions.run()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            # get_principal may look the key up in the store: off the event loop, as FastAPI runs it for REST
            scope[PRINCIPAL] = await anyio.to_thread.run_sync(get_principal, Request(scope))
        except DocQAError as exc:
            await problem_response(logged_problem(exc))(scope, receive, send)
            return
        await self.sessions.handle_request(scope, receive, send)


def http_endpoint(ctx: ServiceContext) -> HttpEndpoint:
    """The /mcp endpoint over the app's ServiceContext."""
    return HttpEndpoint(DocqaMCP(ctx, local=False), ctx.settings.limits.max_request_bytes)


def serve_stdio(settings: Settings) -> None:
    """`docqa mcp`: serve over this process's stdin and stdout until the client closes them. The model loads
    in the background once the SDK holds stdout (it points fd 1 at stderr meanwhile, so stray output from any
    library misses the protocol); the first question on the default collection waits for it."""
    from service.app import _warm_up, build_context

    ctx = build_context(settings)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        threading.Thread(target=_warm_up, args=(ctx,), name="docqa-warm-up", daemon=True).start()
        yield

    try:
        DocqaMCP(ctx, local=True, lifespan=lifespan).run("stdio")
    finally:
        ctx.jobs.shutdown()
        ctx.store.flush()
        ctx.store.close()
