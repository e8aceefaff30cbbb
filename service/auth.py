"""Who is calling and what they may touch. Every route asks for a Principal; with auth off it is an all-access admin."""

from __future__ import annotations

from dataclasses import dataclass

from indexes.errors import NotFound
from service.errors import Forbidden

ROLES = ("admin", "writer", "reader")


@dataclass(frozen=True)
class Principal:
    """A caller: a role and the collections it may use (None = all)."""

    role: str
    collections: frozenset[str] | None = None
    key_id: str | None = None

    def can_read(self, collection: str) -> bool:
        """May this caller see documents of `collection`?"""
        return self.collections is None or collection in self.collections

    def can_write(self, collection: str) -> bool:
        """May this caller add or remove documents in `collection`?"""
        return self.role in ("admin", "writer") and self.can_read(collection)

    def require_read(self, collection: str) -> None:
        """NotFound (existence must not leak) unless the caller may read the collection."""
        if not self.can_read(collection):
            raise NotFound(f"collection {collection!r} not found")

    def require_write(self, collection: str) -> None:
        """Forbidden unless the caller may write the collection (NotFound if it may not even read it)."""
        self.require_read(collection)
        if not self.can_write(collection):
            raise Forbidden(f"role {self.role!r} may not change collection {collection!r}")

    def require_admin(self) -> None:
        """Forbidden unless the caller is an admin of every collection."""
        if self.role != "admin" or self.collections is not None:
            raise Forbidden("this needs an admin key")


ANONYMOUS_ADMIN = Principal("admin")
