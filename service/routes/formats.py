"""The formats docqa reads, from the parser registry: what the upload form accepts and what clients may send."""

from __future__ import annotations

from fastapi import APIRouter

from ingest.pipeline import formats
from service.schemas import FormatOut

router = APIRouter(prefix="/v1", tags=["collections"])


def formats_sentence() -> str:
    """ "PDF, Markdown, …" for descriptions people read."""
    return ", ".join(f"{f.name} ({' '.join(f.suffixes)})" for f in formats())


@router.get("/formats", response_model=list[FormatOut], summary="File formats that can be ingested")
def list_formats() -> list[FormatOut]:
    """Every format a registered parser reads (plugins' included), by name, with its suffixes; an upload of any
    other suffix is refused with 415."""
    return [FormatOut(name=f.name, suffixes=list(f.suffixes)) for f in formats()]
