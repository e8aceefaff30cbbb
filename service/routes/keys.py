"""Admin API for API keys: create (the secret is shown once), list, revoke."""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from indexes.errors import InvalidInput
from service.auth import Principal
from service.context import ServiceContext, get_context, get_principal
from service.schemas import COLLECTION_NAME, Problem

router = APIRouter(prefix="/v1", tags=["admin"])
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No or invalid key"},
    403: {"model": Problem, "description": "Not an admin key"},
}


class KeyCreate(BaseModel):
    """A key to create."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"role": "reader", "collections": ["handbook"], "name": "support team"}]})

    role: Literal["admin", "writer", "reader"]
    collections: list[str] | None = Field(None, description="Collections it may use; null means all.")
    name: str = Field("", max_length=200)


class KeyOut(BaseModel):
    """A key's record; `key` (the secret) only in the answer to its creation."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "a1b2c3d4e5f6", "name": "support team", "role": "reader", "collections": ["handbook"], "created_at": 1764158400.0, "revoked_at": None}]})

    id: str
    name: str
    role: str
    collections: list[str] | None
    created_at: float
    revoked_at: float | None = None
    key: str | None = None


def _keys(ctx: ServiceContext, principal: Principal) -> Any:
    principal.require_admin()
    return ctx.keys


@router.post("/keys", response_model=KeyOut, status_code=201, responses=ADMIN_ERRORS, summary="Create an API key")
def create_key(body: KeyCreate, ctx: ServiceContext = Depends(get_context), principal: Principal = Depends(get_principal)) -> dict[str, Any]:
    """A new key; copy `key` now — only its hash is stored."""
    for name in body.collections or []:
        if not re.match(COLLECTION_NAME, name):
            raise InvalidInput(f"invalid collection name {name!r}")
    record, secret = _keys(ctx, principal).create(body.role, body.collections, body.name)
    return {**record.as_dict(), "key": secret}


@router.get("/keys", response_model=list[KeyOut], responses=ADMIN_ERRORS, summary="List API keys")
def list_keys(ctx: ServiceContext = Depends(get_context), principal: Principal = Depends(get_principal)) -> list[dict[str, Any]]:
    """Every key's record (never the secrets)."""
    return [k.as_dict() for k in _keys(ctx, principal).list()]


@router.delete("/keys/{key_id}", response_model=KeyOut, responses={**ADMIN_ERRORS, 404: {"model": Problem, "description": "Unknown key"}},
               summary="Revoke an API key")
def revoke_key(key_id: str, ctx: ServiceContext = Depends(get_context), principal: Principal = Depends(get_principal)) -> dict[str, Any]:
    """Revoke a key; requests with it get 401 from now on."""
    return _keys(ctx, principal).revoke(key_id).as_dict()
