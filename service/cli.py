"""The `docqa` command: the batch CLI from ingest, plus `serve`."""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from ingest.cli import _State, app


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
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    uvicorn.run(
        "service.app:create_app", factory=True, host=host or settings.host, port=port or settings.port,
        workers=workers or settings.workers, log_config=None, proxy_headers=True,
        timeout_graceful_shutdown=10,
    )


def main() -> None:
    """Console-script entry point."""
    app(sys.argv[1:])
