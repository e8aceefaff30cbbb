"""The filter model that crosses the store boundary: one pydantic model for the HTTP schema and every backend.

A filter restricts retrieval before ranking. It says *what* to keep; each backend compiles it into its own
query language (`indexes/embedded.py` into SQLite, `indexes/postgres.py` into PostgreSQL), so both keep the
same documents for the same filter (the conformance suite checks every operator on both).

Fields a condition may name: `source`, `title`, `pages`, `created_at`, `updated_at` (seconds since the epoch,
or an ISO 8601 date or time), and `metadata.<key>` for a document's own metadata. `ne` and `not_in` keep
documents that lack the field; every other operator needs it present. A range compares numbers with numbers
and strings with strings (ISO dates sort as strings), never one with the other.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any, Callable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# A row id as clients may send it: ids are 64-bit integers in every backend, so a larger number is a 422.
RowId = Annotated[int, Field(ge=1, le=2**63 - 1)]
Scalar = str | int | float | bool
METADATA_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DOCUMENT_FIELDS = ("source", "title", "pages", "created_at", "updated_at")
TIME_FIELDS = ("created_at", "updated_at")
Operator = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte"]
RANGE_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _epoch(value: Any) -> Any:
    """An ISO 8601 date or time as seconds since the epoch (UTC when no zone is given); numbers pass."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number of seconds or an ISO 8601 date") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    return value


class Condition(BaseModel):
    """One test on one field of a document."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"field": "metadata.year", "op": "gte", "value": 2023}, {"field": "metadata.team", "op": "in", "value": ["infra", "ml"]},
    ]})

    field: str = Field(description="source, title, pages, created_at, updated_at, or metadata.<key>")
    op: Operator = "eq"
    value: Scalar | list[Scalar]

    @field_validator("field")
    @classmethod
    def _known_field(cls, name: str) -> str:
        if name in DOCUMENT_FIELDS:
            return name
        key = name.removeprefix("metadata.")
        if name.startswith("metadata.") and METADATA_KEY.match(key):
            return name
        raise ValueError(f"field must be one of {list(DOCUMENT_FIELDS)} or metadata.<key> (key matching "
                         f"{METADATA_KEY.pattern}), got {name!r}")

    @model_validator(mode="after")
    def _value_fits(self) -> "Condition":
        listed = isinstance(self.value, list)
        if self.op in ("in", "not_in"):
            if not listed or not self.value:
                raise ValueError(f"{self.op} takes a non-empty list")
        elif listed:
            raise ValueError(f"{self.op} takes one value, not a list")
        if self.op in RANGE_OPERATORS and isinstance(self.value, bool):
            raise ValueError("a range compares numbers or strings, not true/false")
        if self.field in TIME_FIELDS:
            self.value = [_epoch(v) for v in self.value] if listed else _epoch(self.value)
        return self

    @property
    def metadata_key(self) -> str | None:
        """The metadata key this condition tests, or None for a document field."""
        return self.field.removeprefix("metadata.") if self.field.startswith("metadata.") else None

    @property
    def values(self) -> list[Scalar]:
        """The value(s) as a list."""
        return list(self.value) if isinstance(self.value, list) else [self.value]


class AllOf(BaseModel):
    """Every condition holds (AND)."""

    model_config = ConfigDict(extra="forbid")
    all: list["Node"] = Field(min_length=1)


class AnyOf(BaseModel):
    """At least one condition holds (OR)."""

    model_config = ConfigDict(extra="forbid")
    any: list["Node"] = Field(min_length=1)


Node = Union[Condition, AllOf, AnyOf]
AllOf.model_rebuild()
AnyOf.model_rebuild()


class Filters(BaseModel):
    """Restrict retrieval before ranking; every part given must hold (AND)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"source_glob": "*.pdf", "metadata": {"team": ["infra", "ml"]}},
        {"where": {"any": [{"field": "metadata.year", "op": "gte", "value": 2023},
                           {"field": "source", "op": "in", "value": ["handbook.md"]}]}},
    ]})

    document_ids: list[RowId] | None = Field(None, description="Only these documents.")
    source_glob: str | None = Field(
        None, max_length=500, description="Only documents whose source matches this glob: * and ? and [a-z], case-sensitive.")
    metadata: dict[str, Scalar | list[Scalar]] = Field(
        default_factory=dict, description="Metadata equality (scalar) or membership (list).")
    where: Node | None = Field(None, description="Conditions combined with all (AND) / any (OR).")

    @field_validator("source_glob")
    @classmethod
    def _closed_classes(cls, glob: str | None) -> str | None:
        i = 0
        while glob and (i := glob.find("[", i)) >= 0:
            if (i := _class_end(glob, i)) < 0:
                raise ValueError(f"source_glob has a '[' that is never closed: {glob!r}")
        return glob

    @field_validator("metadata")
    @classmethod
    def _metadata_keys(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        for key, value in metadata.items():
            if not METADATA_KEY.match(key):
                raise ValueError(f"metadata filter key must match {METADATA_KEY.pattern}, got {key!r}")
            if isinstance(value, list) and not value:
                raise ValueError(f"metadata filter {key!r} must be a scalar or a non-empty list of scalars")
        return metadata

    @property
    def empty(self) -> bool:
        """True when nothing is filtered."""
        return self.document_ids is None and not self.source_glob and not self.metadata and self.where is None

    def conditions(self) -> Node | None:
        """Everything but document ids as one tree: the glob and the metadata shorthand become conditions."""
        parts: list[Node] = [
            Condition(field=f"metadata.{key}", op="in" if isinstance(v, list) else "eq", value=v)
            for key, v in self.metadata.items()
        ]
        if self.where is not None:
            parts.append(self.where)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else AllOf(all=parts)


# The document fields as columns of a `documents d` table, for SQL backends.
SQL_COLUMNS = {name: f"d.{name}" for name in DOCUMENT_FIELDS}


def sql_tree(node: Node, condition: Callable[[Condition], str]) -> str:
    """A condition tree as one SQL boolean expression: `all` as AND, `any` as OR, leaves by `condition`."""
    if isinstance(node, AllOf):
        return "(" + " AND ".join(sql_tree(n, condition) for n in node.all) + ")"
    if isinstance(node, AnyOf):
        return "(" + " OR ".join(sql_tree(n, condition) for n in node.any) + ")"
    return condition(node)


def _class_end(glob: str, i: int) -> int:
    """Where the bracket class opened at `i` closes (a `]` first, or after `^`, is a member), or -1."""
    first = i + 1 + (glob[i + 1:i + 2] == "^")
    first += glob[first:first + 1] == "]"
    return glob.find("]", first)


def glob_regex(glob: str) -> str:
    """A glob as SQLite's GLOB reads it (`*`, `?`, `[a-z]`, `[^a]`, case-sensitive), as an anchored POSIX
    regular expression for backends without GLOB."""
    out, i = ["^"], 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            end = _class_end(glob, i)
            out.append(glob[i:end + 1].replace("\\", "\\\\"))
            i = end
        else:
            out.append(c if c.isalnum() else "\\" + c)
        i += 1
    return "".join(out) + "$"
