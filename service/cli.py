"""The `docqa` command: the batch CLI from ingest, plus `serve`, `mcp`, `search`, `plugins`, `keys` and `eval`; the edge
that reads the settings.

Every command reads one `Settings`, once: its flags, then `DOCQA_*` environment variables, then `.env` in the
current directory, then the defaults. The batch commands get plain values from it (ingest/cli.py `_State`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import typer
from pydantic import ValidationError

from ingest.cli import CollectionOpt, JsonOpt, _State, app, err, fail, out
from service.evaluation.cli import eval_app
from service.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

app.add_typer(eval_app, name="eval")


class _Run:
    """This run's settings, and the flags among them (as Settings fields, nested)."""

    settings: Settings | None = None
    flags: dict[str, Any] = {}


def _env_name(path: Sequence[Any]) -> str:
    """The variable of a settings field path: ("embedder", "model") is DOCQA_EMBEDDER__MODEL."""
    return "DOCQA_" + "__".join(str(part) for part in path).upper()


def _invalid(error: Any) -> str:
    """One invalid setting in words: its variable, what is wrong, and the value given when it is a plain value of
    a section that holds no secrets (store URLs and generator sections may carry passwords and API keys)."""
    where, value = _env_name(error["loc"]), error["input"]
    secret = error["loc"][:1] in (("store",), ("generator",), ("reranker",))
    shown = "" if secret or not isinstance(value, (str, int, float, bool)) else f" (got {value!r})"
    return f"{where}: {error['msg']}{shown}"


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """The flags that were given (None: not given), nested sections kept only if something in them was."""
    given = {}
    for key, value in values.items():
        if isinstance(value, dict):
            value = _given(value)
        if value not in (None, {}):
            given[key] = value
    return given


def _environment(values: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, str]:
    """The DOCQA_* variables that set the same fields as `values`."""
    env = {}
    for key, value in values.items():
        if isinstance(value, dict):
            env.update(_environment(value, (*path, key)))
        else:
            env[_env_name((*path, key))] = str(value)
    return env


def _read_settings(flags: dict[str, Any]) -> Settings:
    """The settings with these flags on top; a value that is no valid setting ends the run, naming it."""
    try:
        return Settings(**flags)
    except ValidationError as exc:
        fail("invalid settings: " + "; ".join(_invalid(e) for e in exc.errors()))
        raise  # unreachable: fail() exits


@app.callback()
def main_options(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Where the embedded store lives [DOCQA_DATA_DIR]."),
    store: Optional[str] = typer.Option(
        None, "--store",
        help="Store URL: postgresql://user:pass@host:5432/db (default: the embedded store under --data-dir) [DOCQA_STORE__URL]."),
    model: Optional[str] = typer.Option(None, "--model", help="sentence-transformers model name or path [DOCQA_EMBEDDER__MODEL]."),
    precision: Optional[str] = typer.Option(None, "--precision", help="fp32 or bf16 [DOCQA_EMBEDDER__PRECISION]."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda [DOCQA_EMBEDDER__DEVICE]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Embedding batch size [DOCQA_EMBEDDER__BATCH_SIZE]."),
) -> None:
    """Global options; each outranks its DOCQA_* variable, which outranks `.env`, which outranks the default."""
    _Run.flags = _given({
        "data_dir": data_dir, "store": {"url": store or None},
        "embedder": {"model": model, "precision": precision, "device": device, "batch_size": batch_size},
    })
    settings = _Run.settings = _read_settings(_Run.flags)
    _trace()
    _State.data_dir, _State.collection = settings.data_dir, settings.default_collection
    _State.store_url, _State.store_options = settings.store.url, settings.store.options()
    _State.spec, _State.limits, _State.ocr = settings.embedder.spec(), settings.limits.per_file(), settings.ocr.options()
    _State.storage_options = settings.sources.storage_options


def _trace() -> None:
    """Traces for this run (`docqa ingest` and the rest) if the OTEL_* variables ask for them; a bad one ends it."""
    from indexes.errors import DocQAError
    from service.tracing import configure_tracing

    try:
        configure_tracing()
    except DocQAError as exc:
        fail(exc.detail)


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, "--host", help="Interface to bind [DOCQA_HOST]."),
    port: Optional[int] = typer.Option(None, "--port", help="Port [DOCQA_PORT]."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Worker processes [DOCQA_WORKERS]."),
) -> None:
    """Serve the HTTP API and the chat page (uvicorn)."""
    import uvicorn

    from service.logs import configure_logging

    settings = _Run.settings
    assert settings is not None  # main_options ran
    # A worker process reads its settings afresh, from the environment and the same .env: the flags go to it
    # as the variables they outrank (nothing else is exported, so .env keeps its say).
    os.environ.update(_environment(_Run.flags))
    _State.store().close()  # fail fast, in one line, on a data dir or database that cannot be used
    configure_logging(settings.log_level, settings.log_json)
    uvicorn.run(
        "service.cli:worker_app", factory=True, host=settings.host if host is None else host,
        port=settings.port if port is None else port, workers=settings.workers if workers is None else workers,
        log_config=None, proxy_headers=True, timeout_graceful_shutdown=10,
    )


def worker_app() -> FastAPI:
    """The app as each `docqa serve` worker builds it: from this run's settings, or, in a worker process of its
    own, from its environment; logging is set up here too, since a spawned worker starts without the parent's
    log handlers."""
    from service.app import create_app
    from service.logs import configure_logging

    settings = _Run.settings or Settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)


@app.command("mcp")
def mcp_stdio() -> None:
    """Serve the Model Context Protocol over stdio, for a local agent (Claude Desktop, VS Code, Cursor) that runs
    this command: tools search, ask, list_collections, get_document; documents as docqa:// resources. It runs
    with the rights of this process (every collection); stdout is the protocol, logs go to stderr."""
    from service.logs import configure_logging
    from service.mcp_server import serve_stdio

    settings = _Run.settings
    assert settings is not None  # main_options ran
    configure_logging(settings.log_level, settings.log_json)
    _State.store().close()  # fail fast, in one line on stderr, on a data dir or database that cannot be used
    serve_stdio(settings)


@app.command()
def search(
    query: str = typer.Argument(..., help="What to look for."),
    collection: str = CollectionOpt,
    mode: Optional[str] = typer.Option(None, "--mode", help="dense, lexical or hybrid [DOCQA_RETRIEVAL__MODE]."),
    k: Optional[int] = typer.Option(None, "-k", "--top-k", help="How many passages [DOCQA_RETRIEVAL__TOP_K]."),
    as_json: bool = JsonOpt,
) -> None:
    """Print the best-matching passages with document, place (page, slide, sheet and rows…) and score, through the
    service's retrieval pipeline (re-ranked when DOCQA_RERANKER__MODEL is set); warnings go to stderr."""
    from indexes.errors import DocQAError
    from indexes.locators import locator_label
    from indexes.search import MODES
    from service.rerankers import build_reranker
    from service.retrieval import RetrievalPipeline

    settings = _Run.settings
    assert settings is not None  # main_options ran
    mode = settings.retrieval.mode if mode is None else mode
    if mode not in MODES:
        fail(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    store = _State.store()
    try:
        target = store.get_collection(collection)
        pipeline = RetrievalPipeline(store, settings.retrieval, build_reranker(settings.reranker),
                                     settings.reranker.candidates)
        retrieved = pipeline.search(target, query, mode=mode, k=k)
    except DocQAError as exc:
        fail(exc.detail)
    for warning in retrieved.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True, highlight=False)
    hits = retrieved.hits
    if as_json:
        out.print_json(json.dumps({"query": query, "mode": mode, "hits": [_hit_dict(h, locator_label) for h in hits]}))
        return
    for rank, h in enumerate(hits, 1):
        place = locator_label(h.locator)
        where = f", {place}" if place else ""
        ocr = " [dim](OCR)[/dim]" if h.ocr else ""
        out.print(f"[bold]{rank}.[/bold] {h.title}{where}{ocr} [dim]({h.score:.4f})[/dim] [dim]{h.source}[/dim]", highlight=False)
        out.print(f"   {h.text[:400]}", highlight=False)


def _hit_dict(hit: Any, locator_label: Any) -> dict[str, Any]:
    return {
        "chunk_id": hit.chunk_id, "document_id": hit.document_id, "title": hit.title, "source": hit.source,
        "page": hit.page_start, "page_end": hit.page_end, "locator": hit.locator,
        "locator_label": locator_label(hit.locator), "ocr": hit.ocr, "heading_path": list(hit.heading_path),
        "score": hit.score, "scores": hit.scores, "text": hit.text,
    }


@app.command("plugins")
def list_plugins(as_json: bool = JsonOpt) -> None:
    """Every installed store, embedder, parser, generator, re-ranker and engine: its name, the package that provides it (docqa for
    the built-ins) and the object it names; exits 1 if one fails to load."""
    from rich.table import Table

    from indexes.errors import PluginError
    from indexes.plugins import GROUPS, registered

    rows = []
    for group in GROUPS:
        for plugin in registered(group):
            try:
                plugin.load()
                error = None
            except PluginError as exc:
                error = exc.detail
            rows.append({"group": group, "name": plugin.name, "distribution": plugin.distribution,
                         "object": plugin.value, "error": error})
    if as_json:
        out.print_json(json.dumps({"plugins": rows}))
    else:
        table = Table("group", "name", "from", "object")
        for r in rows:
            table.add_row(r["group"], r["name"], r["distribution"], r["object"])
        out.print(table)
        for r in rows:
            if r["error"]:
                out.print(f"[red]failed[/red] {r['error']}", soft_wrap=True, highlight=False)
    if any(r["error"] for r in rows):
        raise typer.Exit(1)


keys_app = typer.Typer(help="API keys: create, list, revoke (stored hashed in the store).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _key_store():  # noqa: ANN202 - typer commands stay small
    from service.keys import KeyStore

    return KeyStore(_State.store().records.keys)


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., "--role", help="admin, writer or reader."),
    collections: Optional[str] = typer.Option(None, "--collections", help="Comma-separated collections (default: all)."),
    name: str = typer.Option("", "--name", help="A label for people."),
) -> None:
    """Create a key and print it once: only its hash is stored."""
    from indexes.errors import DocQAError

    scope = [c.strip() for c in collections.split(",") if c.strip()] if collections else None
    try:
        record, secret = _key_store().create(role, scope, name)
    except DocQAError as exc:
        fail(exc.detail)
    out.print(f"created key {record.id} ({record.role}, collections: {', '.join(scope) if scope else 'all'})")
    out.print(secret, highlight=False, soft_wrap=True)


@keys_app.command("list")
def keys_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every key: id, name, role, collections, revoked or not."""
    keys = [k.as_dict() for k in _key_store().list()]
    if as_json:
        out.print_json(json.dumps({"keys": keys}))
        return
    for k in keys:
        state = "revoked" if k["revoked_at"] else "active"
        out.print(f"{k['id']}  {k['role']:<6}  {state:<7}  {','.join(k['collections'] or ['*'])}  {k['name']}")


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key's id (from `keys list`).")) -> None:
    """Revoke a key: it stops working at once."""
    from indexes.errors import DocQAError

    try:
        _key_store().revoke(key_id)
    except DocQAError as exc:
        fail(exc.detail)
    out.print(f"revoked {key_id}")


def main() -> None:
    """Console-script entry point."""
    app(sys.argv[1:])


if __name__ == "__main__":
    main()
