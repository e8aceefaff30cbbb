"""One error hierarchy for docqa. Each error carries the HTTP status the service maps it to."""

from __future__ import annotations


class DocQAError(Exception):
    """Base of every error docqa raises on purpose."""

    status: int = 500
    title: str = "Internal error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title


class InvalidInput(DocQAError):
    status = 422
    title = "Invalid input"


class NotFound(DocQAError):
    status = 404
    title = "Not found"


class Conflict(DocQAError):
    status = 409
    title = "Conflict"


class EmbedderMismatch(Conflict):
    title = "Embedder mismatch"


class PayloadTooLarge(DocQAError):
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(DocQAError):
    status = 415
    title = "Unsupported media type"


class ParseError(DocQAError):
    """A file could not be turned into text; `detail` is the reason shown to people."""

    status = 422
    title = "Document could not be parsed"


class LimitExceeded(DocQAError):
    """A configured limit (pages, text size, chunks) was exceeded."""

    status = 413
    title = "Limit exceeded"


class Unauthorized(DocQAError):
    status = 401
    title = "Unauthorized"


class Forbidden(DocQAError):
    status = 403
    title = "Forbidden"


class GeneratorUnavailable(DocQAError):
    status = 502
    title = "Generator unavailable"


class PluginError(DocQAError):
    """A registered plugin could not be loaded, or none is registered for a kind of backend."""

    status = 500
    title = "Plugin unavailable"


class Overloaded(DocQAError):
    status = 503
    title = "Service overloaded"


class StorageError(DocQAError):
    """The data directory cannot be used (read-only, full, corrupt)."""

    status = 503
    title = "Storage unavailable"


class StorageUnavailable(StorageError):
    """A database server cannot be reached or did not answer in time; retrying later may work."""

    title = "Storage unavailable"
