"""Where in its document a chunk sits, in the document's own terms: page, slide, sheet and rows, or chapter.

A locator is a small JSON-able dict stored with the chunk and shown in every citation:
`{"kind": "page", "page": 3}`, `{"kind": "slide", "slide": 5}`, `{"kind": "chapter", "chapter": 2}`,
`{"kind": "sheet", "sheet": "Q3", "rows": [2, 41]}` (a CSV's sheet is null). Chunks stored before locators
existed have none; `locator_of` derives theirs from their pages, so old catalogs cite as they always did.
"""

from __future__ import annotations

from typing import Any

UNITS = frozenset({"page", "slide", "chapter", "sheet"})
"""What a document's `Section.page` numbers count (a sheet's sections carry sheet and rows instead)."""

Locator = dict[str, Any]


def make_locator(
    unit: str, page: int | None, sheet: str | None = None, rows: tuple[int, int] | None = None
) -> Locator | None:
    """The locator of a chunk of a document whose sections count `unit`s; None where the format has no places."""
    if unit == "sheet":
        if sheet is None and rows is None:
            return None
        return {"kind": "sheet", "sheet": sheet, "rows": list(rows) if rows else None}
    if page is None:
        return None
    return {"kind": unit, unit: page}


def locator_of(locator: Locator | None, page_start: int | None) -> Locator | None:
    """A stored chunk's locator: its own, or for a chunk stored before locators, the page it is on."""
    if locator:
        return locator
    return {"kind": "page", "page": page_start} if page_start is not None else None


def locator_label(locator: Locator | None) -> str | None:
    """How people read a locator: "page 3", "slide 5", "chapter 2", "sheet Q3, rows 2–41", "rows 2–41"."""
    if not locator:
        return None
    kind = locator.get("kind")
    if kind == "sheet":
        rows = locator.get("rows")
        span = None
        if rows:
            span = f"row {rows[0]}" if rows[0] == rows[1] else f"rows {rows[0]}–{rows[1]}"
        sheet = f"sheet {locator['sheet']}" if locator.get("sheet") else None
        return ", ".join(p for p in (sheet, span) if p) or None
    if kind in UNITS and locator.get(kind) is not None:
        return f"{kind} {locator[kind]}"
    return None


def same_place(a: Locator | None, b: Locator | None) -> bool:
    """Whether two chunks sit in one citable place: the same page, slide or chapter, or the same sheet."""
    if a is None or b is None:
        return a is b
    if a.get("kind") == "sheet":
        return b.get("kind") == "sheet" and a.get("sheet") == b.get("sheet")
    return a == b


def merged(locators: list[Locator | None]) -> Locator | None:
    """One locator for neighbouring chunks in one place (see same_place): a sheet's rows cover all of theirs."""
    first = locators[0] if locators else None
    if not first or first.get("kind") != "sheet":
        return first
    rows = [loc["rows"] for loc in locators if loc and loc.get("rows")]
    if not rows:
        return first
    return {**first, "rows": [min(r[0] for r in rows), max(r[1] for r in rows)]}
