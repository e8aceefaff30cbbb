"""The `docqa` command: the batch CLI from ingest, plus `serve`."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Optional

import typer

from ingest.cli import JsonOpt, _State, app, fail, out
from service.evaluation.cli import eval_app

if TYPE_CHECKING:
    from fastapi import FastAPI

app.add_typer(eval_app, name="eval")


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, "--host", envvar="DOCQA_HOST", help="Interface to bind (default 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", envvar="DOCQA_PORT", help="Port (default 8000)."),
    workers: Optional[int] = typer.Option(None, "--workers", envvar="DOCQA_WORKERS", help="Worker processes."),
) -> None:
    """Serve the HTTP API and the chat page (uvicorn)."""
    import uvicorn

    from service.logs import configure_logging
    from service.settings import Settings

    # Workers build the app from the environment, so pass the global options down that way.
    os.environ["DOCQA_DATA_DIR"] = str(_State.data_dir)
    if _State.store_url:
        os.environ["DOCQA_STORE__URL"] = _State.store_url
    settings = Settings()
    _State.store().close()  # fail fast, in one line, on a data dir or database that cannot be used
    configure_logging(settings.log_level, settings.log_json)
    uvicorn.run(
        "service.cli:worker_app", factory=True, host=host or settings.host, port=port or settings.port,
        workers=workers or settings.workers, log_config=None, proxy_headers=True,
        timeout_graceful_shutdown=10,
    )


def worker_app() -> FastAPI:
    """The app as each `docqa serve` worker builds it: settings from the environment, and logging set up
    here too, since a spawned worker process starts without the parent's log handlers."""
    from service.app import create_app
    from service.logs import configure_logging
    from service.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)


@app.command("plugins")
def list_plugins(as_json: bool = JsonOpt) -> None:
    """Every installed store, embedder, parser and generator: its name, the package that provides it (docqa for
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
