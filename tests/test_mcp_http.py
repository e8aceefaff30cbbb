"""/mcp on a real `docqa serve` (uvicorn) with auth on, driven by the official SDK's Streamable HTTP client:
the same API keys and collection permissions as the REST API. A reader of `alpha` never sees `beta` — not in
list_collections, search, ask, get_document, resources/list or a resource read — and gets the same "not found"
for it as for a collection that does not exist; no key, a malformed or a revoked key is refused with 401.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable, Iterator

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from mcp_data import SECRET, McpData, build
from server import DocqaServer

pytestmark = pytest.mark.slow

KEYS = {"admin": ("admin", None), "reader_alpha": ("reader", ["alpha"]), "revoked": ("admin", None)}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, embedder) -> McpData:
    made = build(tmp_path_factory.mktemp("mcp-http"), embedder, KEYS)
    from indexes.embedded import EmbeddedStore
    from indexes.embedders import EmbedderSpec
    from service.keys import KeyStore

    store = EmbeddedStore(made.data_dir, EmbedderSpec())
    try:
        keys = KeyStore(store.records.keys)
        keys.revoke(next(k.id for k in keys.list() if k.name == "revoked"))
    finally:
        store.close()
    return made


@pytest.fixture(scope="module")
def server(data: McpData) -> Iterator[DocqaServer]:
    with DocqaServer(data.data_dir.parent / "server", data_dir=data.data_dir, env={"DOCQA_AUTH__ENABLED": "true"}) as running:
        yield running


def with_client(server: DocqaServer, key: str | None, body: Callable[[Client], Awaitable[Any]], **options: Any) -> Any:
    """Connect to /mcp presenting `key` (Bearer), run `body` with the client, close it."""

    async def main() -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        with anyio.fail_after(120):
            async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
                async with Client(streamable_http_client(f"{server.base_url}/mcp", http_client=http), **options) as client:
                    return await body(client)

    return anyio.run(main)


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or the exception itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def sees(client_calls: dict[str, Any]) -> str:
    """Everything the caller got back, as one string (to look for what it must not see)."""
    return json.dumps(client_calls, default=str)


async def everything(client: Client, documents: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Every tool on every collection (and one that does not exist), every resource read, resources/list."""
    beta_doc = documents["beta"]["vault.md"]
    calls: dict[str, Any] = {"collections": await client.call_tool("list_collections", {})}
    for name in ("alpha", "beta", "gamma"):
        calls[f"search {name}"] = await client.call_tool("search", {"query": "vault combination", "collection": name})
        calls[f"ask {name}"] = await client.call_tool("ask", {"question": "What is the vault combination?", "collection": name})
    calls["get beta"] = await client.call_tool("get_document", {"collection": "beta", "document_id": beta_doc})
    calls["get beta doc via alpha"] = await client.call_tool("get_document", {"collection": "alpha", "document_id": beta_doc})
    calls["get alpha"] = await client.call_tool("get_document", {"collection": "alpha",
                                                                 "document_id": documents["alpha"]["handbook.md"]})
    calls["resources"] = (await client.list_resources()).resources
    for uri in (f"docqa://beta/{beta_doc}", f"docqa://alpha/{beta_doc}", f"docqa://alpha/{documents['alpha']['handbook.md']}"):
        try:
            calls[uri] = (await client.read_resource(uri)).contents[0].text
        except Exception as exc:  # noqa: BLE001 - the refusal is what is checked
            calls[uri] = exc
    return calls


def test_a_reader_of_alpha_never_sees_beta_through_mcp(server, data):
    calls = with_client(server, data.keys["reader_alpha"], lambda c: everything(c, data.documents))
    beta_doc, handbook = data.documents["beta"]["vault.md"], data.documents["alpha"]["handbook.md"]

    assert [c["name"] for c in calls["collections"].structured_content["result"]] == ["alpha"]
    for name in ("search", "ask"):
        assert not calls[f"{name} alpha"].is_error, text(calls[f"{name} alpha"])
        for hidden in ("beta", "gamma"):  # forbidden and missing read alike
            assert calls[f"{name} {hidden}"].is_error and f"collection '{hidden}' not found" in text(calls[f"{name} {hidden}"])
    assert calls["get beta"].is_error and "collection 'beta' not found" in text(calls["get beta"])
    assert calls["get beta doc via alpha"].is_error and "not found" in text(calls["get beta doc via alpha"])
    assert calls["get alpha"].structured_content["source"] == "handbook.md"
    assert {str(r.uri) for r in calls["resources"]} == {f"docqa://alpha/{i}" for i in data.documents["alpha"].values()}
    assert "collection 'beta' not found" in str(calls[f"docqa://beta/{beta_doc}"])
    assert "not found" in str(calls[f"docqa://alpha/{beta_doc}"])
    assert "12 nodes" in calls[f"docqa://alpha/{handbook}"]
    assert SECRET not in sees(calls)
    assert "vault.md" not in sees(calls)
    # the answer is recorded like a REST one: its id takes the reader's feedback, through REST
    answer_id = calls["ask alpha"].structured_content["answer_id"]
    headers = {"Authorization": f"Bearer {data.keys['reader_alpha']}"}
    rated = httpx.post(f"{server.base_url}/v1/answers/{answer_id}/feedback", json={"rating": "up"}, headers=headers,
                       timeout=30)
    assert rated.status_code == 201, rated.text
    stored = httpx.get(f"{server.base_url}/v1/answers/{answer_id}", headers=headers, timeout=30).json()
    assert (stored["collection"], stored["origin"], [f["rating"] for f in stored["feedback"]]) == ("alpha", "mcp", ["up"])


def test_an_admin_key_sees_every_collection_and_the_secret(server, data):
    calls = with_client(server, data.keys["admin"], lambda c: everything(c, data.documents))
    beta_doc = data.documents["beta"]["vault.md"]
    names = [c["name"] for c in calls["collections"].structured_content["result"]]
    assert {"alpha", "beta"} <= set(names)
    assert SECRET in calls["ask beta"].structured_content["answer"], calls["ask beta"].structured_content
    assert calls["search beta"].structured_content["hits"][0]["source"] == "vault.md"
    assert calls["get beta"].structured_content["source"] == "vault.md"
    assert SECRET in calls[f"docqa://beta/{beta_doc}"]
    assert calls["search gamma"].is_error and "collection 'gamma' not found" in text(calls["search gamma"])
    uris = {str(r.uri) for r in calls["resources"]}
    assert {f"docqa://{c}/{i}" for c, ids in data.documents.items() for i in ids.values()} <= uris


def test_mcp_and_rest_show_a_key_the_same_collections_in_either_protocol_generation(server, data):
    """The initialize handshake (the 2025 protocol that desktop clients speak) and the SDK's default, which
    negotiates the newest; both see what GET /v1/collections shows the same key."""
    key = data.keys["reader_alpha"]
    rest = httpx.get(f"{server.base_url}/v1/collections", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert rest.status_code == 200

    async def listed(client: Client) -> tuple[str, Any]:
        return client.protocol_version, await client.call_tool("list_collections", {})

    versions = {}
    for mode in ("legacy", "auto"):
        versions[mode], result = with_client(server, key, listed, mode=mode)
        assert [c["name"] for c in result.structured_content["result"]] == [c["name"] for c in rest.json()], mode
    assert versions["legacy"] in HANDSHAKE_PROTOCOL_VERSIONS and versions["auto"] in MODERN_PROTOCOL_VERSIONS, versions


@pytest.mark.parametrize("caller", ["no_key", "malformed", "unknown", "revoked"])
def test_mcp_without_a_valid_key_is_401_like_rest(server, data, caller):
    key = {"no_key": None, "malformed": "nope", "unknown": "dqa_000000000000_xyz", "revoked": data.keys["revoked"]}[caller]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
    response = httpx.post(f"{server.base_url}/mcp", json=initialize, timeout=30,
                          headers={**headers, "Accept": "application/json, text/event-stream"})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 401 and response.json()["detail"]
    rest = httpx.get(f"{server.base_url}/v1/collections", headers=headers, timeout=30)
    assert rest.status_code == 401 and rest.json()["detail"] == response.json()["detail"]
    with pytest.raises(BaseException) as refused:  # the SDK's client cannot even connect
        with_client(server, key, lambda c: c.call_tool("list_collections", {}))
    assert any(isinstance(e, MCPError) for e in leaves(refused.value)), refused.value
    assert httpx.get(f"{server.base_url}/healthz", timeout=10).status_code == 200


def test_mcp_over_http_holds_no_session_so_any_worker_can_answer_any_request(server, data):
    """A tools/call with no initialize before it and no session id: stateless, as `docqa serve --workers N`
    needs (a session held in one worker's memory would be unknown to the others)."""
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "list_collections", "arguments": {}}}
    response = httpx.post(f"{server.base_url}/mcp", json=call, timeout=30, headers={
        "Authorization": f"Bearer {data.keys['reader_alpha']}", "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18"})
    assert response.status_code == 200, response.text
    assert "mcp-session-id" not in response.headers
    reply = response.json()
    assert reply["id"] == 7 and [c["name"] for c in reply["result"]["structuredContent"]["result"]] == ["alpha"]
