"""`docqa mcp` over stdio, driven by the official SDK's own client (`stdio_client` spawning the real command):
every tool and the document resources, valid tool schemas, errors that leave the server up, and a stdout that
carries nothing but the protocol.

The server runs with the local process's rights, so every collection is visible here; what a limited key may
see is tests/test_mcp_http.py's business.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

import anyio
import pytest
from jsonschema import Draft202012Validator
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from mcp_data import SECRET, McpData, build
from server import ENTRY, docqa_environment

pytestmark = pytest.mark.slow

TOOLS = {"search": ["query"], "ask": ["question"], "list_collections": [], "get_document": ["collection", "document_id"]}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, embedder) -> McpData:
    return build(tmp_path_factory.mktemp("mcp-stdio"), embedder)


def parameters(data: McpData) -> StdioServerParameters:
    """`docqa --data-dir DIR mcp` through this interpreter, with the test environment (offline model, no DOCQA_*)."""
    return StdioServerParameters(command=sys.executable, args=["-c", ENTRY, "--data-dir", str(data.data_dir), "mcp"],
                                 env=docqa_environment(), cwd=str(data.data_dir.parent))


def with_client(data: McpData, body: Callable[[Client], Awaitable[Any]], **options: Any) -> Any:
    """Spawn the server, run `body` with a connected client, and close it (the server exits with its stdin)."""

    async def main() -> Any:
        with anyio.fail_after(240):
            async with Client(parameters(data), **options) as client:
                return await body(client)

    return anyio.run(main)


def structured(result: Any) -> Any:
    """A successful tool call's structured result (list results come wrapped as {"result": [...]})."""
    assert not result.is_error, result.content
    return result.structured_content


def test_tools_have_valid_schemas_that_require_their_arguments(data):
    tools = with_client(data, lambda client: client.list_tools())
    assert {t.name: sorted(t.input_schema.get("required", [])) for t in tools.tools} == {n: sorted(r) for n, r in TOOLS.items()}
    for tool in tools.tools:
        Draft202012Validator.check_schema(tool.input_schema)
        assert tool.input_schema["type"] == "object" and tool.description
        assert tool.output_schema is not None, tool.name
        Draft202012Validator.check_schema(tool.output_schema)
        assert tool.annotations.read_only_hint is True
    search = next(t for t in tools.tools if t.name == "search").input_schema
    assert set(search["properties"]) == {"query", "collection", "k", "filters", "mode"}
    # the schema itself refuses what the tool would refuse: no query, an unknown mode
    validator = Draft202012Validator(search)
    assert not validator.is_valid({"collection": "alpha"})
    assert not validator.is_valid({"query": "x", "mode": "fuzzy"})
    assert validator.is_valid({"query": "x", "collection": "alpha", "k": 3, "filters": {"source_glob": "*.md"}})


def test_every_tool_and_a_document_resource_over_stdio(data):
    async def body(client: Client) -> dict[str, Any]:
        return {
            "collections": structured(await client.call_tool("list_collections", {}))["result"],
            "search": structured(await client.call_tool("search", {"query": "How many nodes does the staging cluster have?",
                                                                   "collection": "alpha", "k": 3})),
            "filtered": structured(await client.call_tool("search", {"query": "staging cluster", "collection": "alpha",
                                                                     "filters": {"source_glob": "*.html"}})),
            "ask": structured(await client.call_tool("ask", {"question": "How many nodes does the staging cluster have?",
                                                             "collection": "alpha"})),
            "abstain": structured(await client.call_tool("ask", {"question": "What is the capital of Mongolia?",
                                                                 "collection": "alpha"})),
            "document": structured(await client.call_tool("get_document", {"collection": "alpha",
                                                                           "document_id": data.documents["alpha"]["handbook.md"]})),
            "resources": (await client.list_resources()).resources,
            "templates": (await client.list_resource_templates()).resource_templates,
            "text": (await client.read_resource(f"docqa://beta/{data.documents['beta']['vault.md']}")).contents,
        }

    got = with_client(data, body)
    counts = {c["name"]: (c["documents"], c["chunks"] > 0) for c in got["collections"]}
    assert {name: counts[name] for name in ("alpha", "beta")} == {"alpha": (2, True), "beta": (2, True)}

    hits = got["search"]["hits"]
    assert 0 < len(hits) <= 3
    assert hits[0]["source"] == "handbook.md" and hits[0]["document_id"] == data.documents["alpha"]["handbook.md"]
    assert "12 nodes" in " ".join(h["text"] for h in hits)
    assert all(isinstance(h["score"], float) and "locator" in h for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert got["filtered"]["hits"] and {h["source"] for h in got["filtered"]["hits"]} == {"faq.html"}

    answer = got["ask"]
    assert answer["abstained"] is False and "12" in answer["answer"], answer
    cited = [c for c in answer["citations"] if c["cited"]]
    assert cited and cited[0]["source"] == "handbook.md" and f"[{cited[0]['n']}]" in answer["answer"]
    assert got["abstain"]["abstained"] is True and got["abstain"]["reason"] and got["abstain"]["answer"] == ""

    document = got["document"]
    assert document["source"] == "handbook.md" and document["status"] == "ok"
    assert len(document["chunk_list"]) == document["chunks"] > 0
    assert any("12 nodes" in c["text"] for c in document["chunk_list"])

    expected = {f"docqa://{c}/{i}" for c, ids in data.documents.items() for i in ids.values()}
    assert {str(r.uri) for r in got["resources"]} == expected
    assert [t.uri_template for t in got["templates"]] == ["docqa://{collection}/{document_id}"]
    assert SECRET in got["text"][0].text and got["text"][0].mime_type == "text/plain"


def test_unknown_collections_documents_and_bad_arguments_are_tool_errors_and_the_server_stays_up(data):
    alpha_doc, beta_doc = data.documents["alpha"]["handbook.md"], data.documents["beta"]["vault.md"]

    async def body(client: Client) -> dict[str, Any]:
        calls = {
            "no collection": ("search", {"query": "x", "collection": "gamma"}),
            "ask no collection": ("ask", {"question": "x?", "collection": "gamma"}),
            "no document": ("get_document", {"collection": "alpha", "document_id": 999_999}),
            "other collection's document": ("get_document", {"collection": "alpha", "document_id": beta_doc}),
            "bad filter": ("search", {"query": "x", "collection": "alpha", "filters": {"where": {"field": "colour", "value": 1}}}),
            "k too large": ("search", {"query": "x", "collection": "alpha", "k": 10_000}),
            "missing argument": ("ask", {"collection": "alpha"}),
        }
        results = {name: await client.call_tool(tool, args) for name, (tool, args) in calls.items()}
        resource_errors = {}
        for uri in ("docqa://gamma/1", f"docqa://alpha/{beta_doc}", "docqa://alpha/abc"):
            try:
                await client.read_resource(uri)
            except MCPError as exc:
                resource_errors[uri] = str(exc)
        after = structured(await client.call_tool("get_document", {"collection": "alpha", "document_id": alpha_doc}))
        return {"results": results, "resource_errors": resource_errors, "after": after}

    got = with_client(data, body)
    messages = {name: " ".join(c.text for c in r.content) for name, r in got["results"].items()}
    assert all(r.is_error for r in got["results"].values()), messages
    assert "collection 'gamma' not found" in messages["no collection"]
    assert "collection 'gamma' not found" in messages["ask no collection"]
    assert "999999" in messages["no document"] and "not found" in messages["no document"]
    assert "not found" in messages["other collection's document"]
    assert "colour" in messages["bad filter"]
    assert "top_k must be between" in messages["k too large"]
    assert "question" in messages["missing argument"]
    assert "collection 'gamma' not found" in got["resource_errors"]["docqa://gamma/1"]
    assert "not found" in got["resource_errors"][f"docqa://alpha/{beta_doc}"]
    assert "not found" in got["resource_errors"]["docqa://alpha/abc"]
    assert SECRET not in json.dumps(got["resource_errors"]) + json.dumps(messages)
    assert got["after"]["source"] == "handbook.md"  # still serving after every failure


def test_stdout_carries_only_the_protocol_and_logs_go_to_stderr(data, tmp_path: Path):
    """The raw pipe, without the SDK's client: every line on stdout is a JSON-RPC message, the logs (the
    warm-up's `ready`) are JSON lines on stderr, and the server exits when its stdin closes."""
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "search", "arguments": {"query": "staging cluster", "collection": "alpha", "k": 1}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "search", "arguments": {"query": "x", "collection": "gamma"}}},
    ]
    process = subprocess.Popen([sys.executable, "-c", ENTRY, "--data-dir", str(data.data_dir), "mcp"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=tmp_path, env=docqa_environment())
    assert process.stdin is not None and process.stdout is not None
    replies = []
    try:
        for message in messages:
            process.stdin.write((json.dumps(message) + "\n").encode())
            process.stdin.flush()
            if "id" in message:
                replies.append(json.loads(process.stdout.readline()))
        rest, stderr = process.communicate(timeout=120)  # closes stdin: the server's cue to exit
    finally:
        process.kill()
    assert process.returncode == 0, stderr.decode(errors="replace")[-3000:]
    assert rest == b""  # nothing after the last reply
    assert [r["id"] for r in replies] == [1, 2, 3] and all(r["jsonrpc"] == "2.0" for r in replies)
    assert replies[0]["result"]["serverInfo"]["name"] == "docqa"
    assert replies[1]["result"]["isError"] is False
    assert replies[1]["result"]["structuredContent"]["hits"][0]["source"] == "handbook.md"
    assert replies[2]["result"]["isError"] is True
    logs = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    assert any(entry["msg"] == "ready" and entry["logger"] == "docqa.service" for entry in logs), stderr.decode()[-2000:]


def test_resources_list_pages_through_the_documents(data, embedder, monkeypatch):
    """resources/list a page at a time (here one document a page), in process with the SDK's in-memory client:
    every readable document once, each page's cursor leading to the next."""
    import service.mcp_server as mcp_server
    from indexes.embedders import EmbedderSpec
    from service.app import build_context
    from service.settings import Settings

    monkeypatch.setattr(mcp_server, "RESOURCES_PAGE", 1)
    ctx = build_context(Settings(data_dir=data.data_dir, log_json=False))
    ctx.store.embedders.add(EmbedderSpec(), embedder)

    async def pages() -> list[list[str]]:
        got, cursor = [], None
        async with Client(mcp_server.DocqaMCP(ctx, local=True)) as client:
            while True:
                page = await client.list_resources(cursor=cursor)
                got.append([str(r.uri) for r in page.resources])
                if not (cursor := page.next_cursor):
                    return got

    try:
        got = anyio.run(pages)
    finally:
        ctx.jobs.shutdown()
        ctx.store.close()
    expected = sorted(f"docqa://{c}/{i}" for c, ids in data.documents.items() for i in ids.values())
    assert [len(page) for page in got] == [1] * len(expected)
    assert sorted(uri for page in got for uri in page) == expected
