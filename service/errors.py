"""Errors only the service raises: who may call, how much it may send, the generator, load."""

from __future__ import annotations

from indexes.errors import DocQAError


class Unauthorized(DocQAError):
    """No valid API key was presented."""


class Forbidden(DocQAError):
    """The caller's key may not do this."""


class PayloadTooLarge(DocQAError):
    """An upload is over the size limit."""


class GeneratorUnavailable(DocQAError):
    """The answer generator failed or did not answer in time."""


class RerankerUnavailable(DocQAError):
    """The re-ranker failed (model error, server down, timeout, a reply of the wrong shape); searches fall back
    to the fused order with a warning, so this reaches a client only from a direct call."""


class Overloaded(DocQAError):
    """Too much work is queued already; retry later."""
