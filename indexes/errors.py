"""One error hierarchy for docqa: storage and ingest errors that say what went wrong.

How an error reaches a client (its HTTP status and problem title) is the service's business: `service/problems.py`
maps every class, these and the service's own (`service/errors.py`), in one table.
"""

from __future__ import annotations


class DocQAError(Exception):
    """Base of every error docqa raises on purpose; `detail` says what went wrong, for people."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(DocQAError):
    """A request, setting or filter that cannot be honoured as given."""


class NotFound(DocQAError):
    """A collection, document, job or record that does not exist (or may not be seen)."""


class Conflict(DocQAError):
    """The thing already exists, or the store's state forbids the change."""


class EmbedderMismatch(Conflict):
    """A collection was built with another embedding model than the one asked for."""


class UnsupportedMediaType(DocQAError):
    """A file of a type no parser reads."""


class ParseError(DocQAError):
    """A file could not be turned into text; `detail` is the reason shown to people."""


class LimitExceeded(DocQAError):
    """A configured limit (pages, text size, chunks) was exceeded."""


class SourceUnavailable(DocQAError):
    """A source of documents (an object store, a web server) cannot be read: unreachable, credentials refused, or
    failing; the documents it holds are not touched."""


class StorageError(DocQAError):
    """The data directory cannot be used (read-only, full, corrupt)."""


class StorageUnavailable(StorageError):
    """A database server cannot be reached or did not answer in time; retrying later may work."""


class PluginError(DocQAError):
    """A registered plugin could not be loaded, or none is registered for a kind of backend."""
