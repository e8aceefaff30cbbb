"""The permission matrix: every role × collection × endpoint, with auth on.

Collection `alpha` holds the secret, `beta` something harmless. Allowed calls answer 2xx; the rest
401 (no, garbage or revoked key), 403 (role too weak) or 404 (collection not readable: its existence
must not leak). No response to a caller who may not read `alpha` ever contains its text.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from ingest.pipeline import IngestPipeline, SourceFile
from service_app import context, make_app, wait_for_job

SECRET = "ALPHA-7"
DOCS = {"alpha": "The secret launch code is ALPHA-7.", "beta": "The cafeteria opens at 8 in the morning."}
SCOPES: dict[str, tuple[str, frozenset[str] | None]] = {
    "admin": ("admin", None),
    "writer_alpha": ("writer", frozenset({"alpha"})),
    "reader_alpha": ("reader", frozenset({"alpha"})),
    "reader_beta": ("reader", frozenset({"beta"})),
}
UNAUTHENTICATED = ("revoked", "no_key", "garbage")
CALLERS = (*SCOPES, *UNAUTHENTICATED)


class World:
    """The app, its client, each caller's headers, and the ids of what the fixture made."""

    def __init__(self, client: TestClient, root: Path) -> None:
        self.client = client
        self.root = root
        self.headers: dict[str, dict[str, str]] = {}
        self.documents: dict[str, int] = {}
        self.jobs: dict[str, str] = {}

    def call(self, caller: str, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.request(method, path, headers=self.headers[caller], **kwargs)

    def current(self, collection: str, source: str) -> int:
        """The id a document has now (ingesting it again gives it a new one)."""
        store = context(self.client.app).store
        return store.find_document(store.get_collection(collection), source).id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, embedder) -> Iterator[World]:
    root = tmp_path_factory.mktemp("auth")
    (root / "server-files").mkdir()
    (root / "server-files" / "notes.md").write_text("# Notes\n\nThe parking garage closes at ten.\n")
    app = make_app(root / "data", embedder, auth={"enabled": True}, server_paths=[root / "server-files"])
    keys = context(app).keys
    with TestClient(app) as client:
        w = World(client, root)
        for caller, (role, scope) in SCOPES.items():
            w.headers[caller] = {"Authorization": f"Bearer {keys.create(role, scope)[1]}"}
        revoked, secret = keys.create("admin")
        keys.revoke(revoked.id)
        w.headers |= {"revoked": {"X-API-Key": secret}, "no_key": {}, "garbage": {"Authorization": "Bearer dqa_nope_nope"}}
        for name, text in DOCS.items():
            assert w.call("admin", "POST", "/v1/collections", json={"name": name}).status_code == 201
            files = [("files", (f"{name}.md", text.encode())), ("files", ("again.md", b"Lockers are emptied on Fridays."))]
            upload = w.call("admin", "POST", f"/v1/collections/{name}/documents", files=files)
            job = wait_for_job(client, upload.json()["id"], w.headers["admin"])
            assert job["state"] == "succeeded", job
            w.jobs[name], w.documents[name] = job["id"], job["files"][0]["document_id"]
        yield w


def may_read(caller: str, collection: str) -> bool:
    scope = SCOPES[caller][1] if caller in SCOPES else frozenset()
    return scope is None or collection in scope


def expected(caller: str, need: str, collection: str | None) -> int | str:
    """'2xx' or the status the caller must get for an endpoint needing `need` on `collection`."""
    if caller in UNAUTHENTICATED:
        return 401
    if need == "any":
        return "2xx"
    if collection is not None and not may_read(caller, collection):
        return 404
    role = SCOPES[caller][0]
    if need == "write" and role == "reader":
        return 403
    if need == "admin" and caller != "admin":
        return 403
    return "2xx"


FRESH = itertools.count()  # names for collections the allowed callers create
Request = Callable[[World, str], tuple[str, str, dict[str, Any]]]
QUESTION = "What is the secret launch code?"
# name → (needs, request(world, collection) → (method, path, kwargs))
SCOPED: dict[str, tuple[str, Request]] = {
    "ask": ("read", lambda w, c: ("POST", "/v1/ask", {"json": {"question": QUESTION, "collection": c}})),
    "ask_stream": ("read", lambda w, c: ("POST", "/v1/ask", {"json": {"question": QUESTION, "collection": c, "stream": True}})),
    "search": ("read", lambda w, c: ("POST", "/v1/search", {"json": {"query": "secret launch code", "collection": c}})),
    "chat": ("read", lambda w, c: ("POST", "/v1/chat/completions",
                                    {"json": {"model": f"docqa:{c}", "messages": [{"role": "user", "content": QUESTION}]}})),
    "chat_stream": ("read", lambda w, c: ("POST", "/v1/chat/completions", {"json": {
        "model": f"docqa:{c}", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}})),
    "conversation_create": ("read", lambda w, c: ("POST", "/v1/conversations", {"json": {"collection": c}})),
    "conversations_list": ("any", lambda w, c: ("GET", f"/v1/conversations?collection={c}", {})),  # filtered: [] if unreadable
    "collection_get": ("read", lambda w, c: ("GET", f"/v1/collections/{c}", {})),
    "documents_list": ("read", lambda w, c: ("GET", f"/v1/collections/{c}/documents", {})),
    "document_get": ("read", lambda w, c: ("GET", f"/v1/collections/{c}/documents/{w.documents[c]}", {})),
    "document_download": ("read", lambda w, c: ("GET", f"/v1/collections/{c}/documents/{w.documents[c]}/file", {})),
    "job_get": ("read", lambda w, c: ("GET", f"/v1/jobs/{w.jobs[c]}", {})),
    "jobs_list": ("any", lambda w, c: ("GET", f"/v1/jobs?collection={c}", {})),  # filtered: [] if unreadable
    "document_reingest": ("write", lambda w, c: ("POST", f"/v1/collections/{c}/documents/{w.current(c, 'again.md')}/reingest", {})),
    "upload": ("write", lambda w, c: ("POST", f"/v1/collections/{c}/documents",
                                      {"files": {"files": ("extra.txt", b"Visitors sign in at the front desk.")}})),
    "ingest_path": ("write", lambda w, c: ("POST", f"/v1/collections/{c}/documents/from-path",
                                           {"json": {"path": str(w.root / "server-files")}})),
}
UNSCOPED: dict[str, tuple[str, Callable[[World], tuple[str, str, dict[str, Any]]]]] = {
    "models": ("any", lambda w: ("GET", "/v1/models", {})),
    "collections_list": ("any", lambda w: ("GET", "/v1/collections", {})),
    "conversations_list_all": ("any", lambda w: ("GET", "/v1/conversations", {})),
    "jobs_list_all": ("any", lambda w: ("GET", "/v1/jobs", {})),
    "collection_create": ("admin", lambda w: ("POST", "/v1/collections", {"json": {"name": f"made-{next(FRESH)}"}})),
    "keys_list": ("admin", lambda w: ("GET", "/v1/keys", {})),
    "keys_create": ("admin", lambda w: ("POST", "/v1/keys", {"json": {"role": "reader", "collections": ["beta"]}})),
    "metrics": ("admin", lambda w: ("GET", "/metrics", {})),
}


def check(response: Any, want: int | str, caller: str) -> None:
    body = response.text
    if want == "2xx":
        assert 200 <= response.status_code < 300, body
    else:
        assert response.status_code == want, body
        if want == 401:
            assert response.headers["www-authenticate"] == "Bearer"
    if not may_read(caller, "alpha"):
        assert SECRET not in body and "launch code is" not in body


@pytest.mark.parametrize("collection", ["alpha", "beta"])
@pytest.mark.parametrize("endpoint", SCOPED)
@pytest.mark.parametrize("caller", CALLERS)
def test_collection_endpoints_follow_the_permission_matrix(world: World, caller: str, endpoint: str, collection: str) -> None:
    need, request = SCOPED[endpoint]
    method, path, kwargs = request(world, collection)
    response = world.call(caller, method, path, **kwargs)
    want = expected(caller, need, collection)
    check(response, want, caller)
    if want == "2xx" and endpoint in ("ask", "search", "chat") and collection == "alpha":
        assert SECRET in response.text  # the matrix would be vacuous if the secret were never found at all


@pytest.mark.parametrize("endpoint", UNSCOPED)
@pytest.mark.parametrize("caller", CALLERS)
def test_global_endpoints_follow_the_permission_matrix(world: World, caller: str, endpoint: str) -> None:
    need, request = UNSCOPED[endpoint]
    method, path, kwargs = request(world)
    check(world.call(caller, method, path, **kwargs), expected(caller, need, None), caller)


@pytest.mark.parametrize("caller", [*SCOPES])
def test_listings_show_only_readable_collections(world: World, caller: str) -> None:
    listed = {c["name"] for c in world.call(caller, "GET", "/v1/collections").json()}
    models = {m["id"] for m in world.call(caller, "GET", "/v1/models").json()["data"]}
    jobs = {j["id"]: j["collection"] for j in world.call(caller, "GET", "/v1/jobs?limit=200").json()}
    for name in DOCS:
        assert (name in listed) == may_read(caller, name)
        assert (f"docqa:{name}" in models) == may_read(caller, name)
        assert (world.jobs[name] in jobs) == may_read(caller, name)
        assert [j["id"] for j in world.call(caller, "GET", f"/v1/jobs?collection={name}&limit=200").json()
                if j["id"] == world.jobs[name]] == ([world.jobs[name]] if may_read(caller, name) else [])
    assert all(may_read(caller, c) for c in jobs.values())


def test_an_unreadable_collection_looks_exactly_like_a_missing_one(world: World) -> None:
    hidden = world.call("reader_beta", "GET", "/v1/collections/alpha").json()
    missing = world.call("reader_beta", "GET", "/v1/collections/nothing").json()
    assert hidden["status"] == missing["status"] == 404
    assert hidden["detail"].replace("alpha", "X") == missing["detail"].replace("nothing", "X")


def test_a_document_of_another_collection_is_not_reachable_through_a_readable_one(world: World) -> None:
    for suffix in ("", "/file"):
        response = world.call("reader_beta", "GET", f"/v1/collections/beta/documents/{world.documents['alpha']}{suffix}")
        assert response.status_code == 404 and SECRET not in response.text


def test_a_conversation_is_invisible_to_every_other_key(world: World) -> None:
    made = world.call("reader_alpha", "POST", "/v1/conversations", json={"collection": "alpha"})
    conversation = made.json()["id"]
    asked = world.call("reader_alpha", "POST", f"/v1/conversations/{conversation}/messages", json={"content": QUESTION, "stream": False})
    assert asked.status_code == 200 and SECRET in asked.text
    assert world.call("reader_alpha", "GET", f"/v1/conversations/{conversation}").status_code == 200
    for caller in ("admin", "writer_alpha", "reader_beta"):
        assert world.call(caller, "GET", f"/v1/conversations/{conversation}").status_code == 404
        posted = world.call(caller, "POST", f"/v1/conversations/{conversation}/messages", json={"content": "and?", "stream": False})
        assert posted.status_code == 404 and SECRET not in posted.text
        assert world.call(caller, "DELETE", f"/v1/conversations/{conversation}").status_code == 404
        assert conversation not in world.call(caller, "GET", "/v1/conversations").text
    for caller in UNAUTHENTICATED:
        assert world.call(caller, "GET", f"/v1/conversations/{conversation}").status_code == 401
    assert world.call("reader_alpha", "DELETE", f"/v1/conversations/{conversation}").status_code == 204


@pytest.mark.parametrize("collection", ["alpha", "beta"])
@pytest.mark.parametrize("caller", CALLERS)
def test_deleting_a_document_needs_write_access(world: World, embedder, caller: str, collection: str) -> None:
    ctx = context(world.client.app)
    target = ctx.store.catalog.get_collection(collection)
    scratch = world.root / f"scratch-{caller}-{collection}.md"
    scratch.write_text("A scratch note about the bicycle racks.")
    report = IngestPipeline(ctx.store, target, workers=0).ingest([SourceFile(scratch, str(scratch))])
    document = report.results[0].document_id
    response = world.call(caller, "DELETE", f"/v1/collections/{collection}/documents/{document}")
    want = expected(caller, "write", collection)
    check(response, want, caller)
    still_there = ctx.store.catalog.find_document(target.id, str(scratch)) is not None
    assert still_there == (want != "2xx")


@pytest.mark.parametrize("caller", CALLERS)
def test_deleting_a_collection_or_revoking_a_key_needs_an_admin(world: World, caller: str) -> None:
    ctx = context(world.client.app)
    scratch = f"scratch-{caller.replace('_', '-')}"
    ctx.store.ensure_collection(scratch)
    key, _ = ctx.keys.create("reader", ["beta"])
    want = expected(caller, "admin", None)
    check(world.call(caller, "DELETE", f"/v1/collections/{scratch}"), expected(caller, "admin", scratch), caller)
    check(world.call(caller, "DELETE", f"/v1/keys/{key.id}"), want, caller)
    assert (ctx.store.catalog.find_collection(scratch) is None) == (want == "2xx")
    assert (ctx.keys.get(key.id).revoked_at is not None) == (want == "2xx")
    if caller != "admin":  # nor the collections they can see
        for name in DOCS:
            response = world.call(caller, "DELETE", f"/v1/collections/{name}")
            assert response.status_code == (401 if caller in UNAUTHENTICATED else 403 if may_read(caller, name) else 404)
            assert ctx.store.catalog.find_collection(name) is not None


@pytest.mark.parametrize("path", ["/", "/healthz"])
def test_the_chat_page_and_liveness_stay_public(world: World, path: str) -> None:
    assert world.call("no_key", "GET", path).status_code == 200
