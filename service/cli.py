"""The `docqa` command: the batch CLI from ingest, plus the commands that run the service."""

from __future__ import annotations

import sys

from ingest.cli import app


def main() -> None:
    """Console-script entry point."""
    app(sys.argv[1:])
