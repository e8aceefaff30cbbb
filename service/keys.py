"""API keys: stored hashed, each with a role and the collections it may use; checked on every request."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Sequence

from fastapi import Request

from indexes.errors import InvalidInput, NotFound
from indexes.records import Keys
from service.auth import ROLES, Principal
from service.errors import Unauthorized

PREFIX = "dqa"


@dataclass(frozen=True)
class ApiKey:
    """A key's record (never its secret)."""

    id: str
    name: str
    role: str
    collections: list[str] | None
    created_at: float
    revoked_at: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(vars(self))


def _hash(key: str) -> str:
    # Keys are 256-bit random secrets, so a plain SHA-256 is enough (as for GitHub tokens): no slow KDF needed.
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """Create, list, revoke and verify API keys, kept in the store (`indexes/records.py`)."""

    def __init__(self, records: Keys) -> None:
        self.records = records

    def create(self, role: str, collections: Sequence[str] | None = None, name: str = "") -> tuple[ApiKey, str]:
        """A new key; the secret is returned once and only its hash is kept."""
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {list(ROLES)}, got {role!r}")
        key_id = secrets.token_hex(6)
        secret = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        scope = None if collections is None else json.dumps(sorted(set(collections)))
        self.records.create(key_id, name, role, scope, _hash(secret), time.time())
        return self.get(key_id), secret

    def _key(self, row: Sequence[Any]) -> ApiKey:
        return ApiKey(row[0], row[1], row[2], None if row[3] is None else json.loads(row[3]), row[4], row[5])

    def get(self, key_id: str) -> ApiKey:
        """A key's record; NotFound if unknown."""
        row = self.records.get(key_id)
        if row is None:
            raise NotFound(f"key {key_id!r} not found")
        return self._key(row)

    def list(self) -> list[ApiKey]:
        """Every key, oldest first."""
        return [self._key(r) for r in self.records.list()]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key; it stops working at once."""
        self.get(key_id)
        self.records.revoke(key_id, time.time())
        return self.get(key_id)

    def verify(self, secret: str) -> Principal:
        """The principal a presented key stands for; Unauthorized if it is unknown, malformed or revoked."""
        parts = secret.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            raise Unauthorized("malformed API key")
        row = self.records.secret(parts[1])
        if row is None or not hmac.compare_digest(row[0], _hash(secret)) or row[3] is not None:
            raise Unauthorized("invalid or revoked API key")
        scope = None if row[2] is None else frozenset(json.loads(row[2]))
        return Principal(row[1], scope, parts[1])


def presented_key(request: Request) -> str | None:
    """The key from `Authorization: Bearer …` or `X-API-Key`."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.headers.get("x-api-key") or None


def authenticator(keys: KeyStore) -> Any:
    """A request → Principal function for app.state.authenticate."""

    def authenticate(request: Request) -> Principal:
        secret = presented_key(request)
        if not secret:
            raise Unauthorized("an API key is required (Authorization: Bearer <key>)")
        return keys.verify(secret)

    return authenticate
