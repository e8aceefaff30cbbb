"""One registry of formats, read by every list of them: the 415 check, `discover`, `GET /v1/formats` (which the
upload form reads), the upload route's description in the OpenAPI schema, and the README's table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ingest.parsers import formats, supported_suffixes
from ingest.pipeline import discover
from service_app import make_app

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_formats() -> dict[str, set[str]]:
    """The README's "Formats" table: each row's format name and the suffixes it lists."""
    section = README.read_text(encoding="utf-8").split("\n## Formats\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| ") and "`." in line]
    return {name.strip(): set(re.findall(r"`(\.[a-z0-9]+)`", suffixes)) for name, suffixes in rows}


def test_the_readme_lists_exactly_the_registered_formats() -> None:
    assert readme_formats() == {f.name: set(f.suffixes) for f in formats()}


def test_every_registered_suffix_belongs_to_one_named_format() -> None:
    listed = [s for f in formats() for s in f.suffixes]
    assert sorted(listed) == sorted(supported_suffixes()) and len(listed) == len(set(listed))
    assert all(f.name and not f.name.startswith(".") for f in formats()), "every built-in parser has a name"


def test_discover_finds_every_registered_suffix_and_nothing_else(tmp_path: Path) -> None:
    for i, suffix in enumerate(sorted(supported_suffixes())):
        (tmp_path / f"file{i}{suffix.upper() if i % 2 else suffix}").write_bytes(b"x")
    (tmp_path / "notes.xyz").write_bytes(b"x")
    found = {p.suffix.lower() for p in discover([tmp_path])}
    assert found == set(supported_suffixes())


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, embedder) -> TestClient:
    with TestClient(make_app(tmp_path_factory.mktemp("formats") / "data", embedder)) as client:
        yield client


def test_the_formats_route_and_the_upload_description_read_the_registry(api: TestClient) -> None:
    listed = api.get("/v1/formats").json()
    assert listed == [{"name": f.name, "suffixes": list(f.suffixes)} for f in formats()]
    schema = api.get("/openapi.json").json()
    body = schema["paths"]["/v1/collections/{name}/documents"]["post"]["requestBody"]["content"]["multipart/form-data"]
    ref = body["schema"]["$ref"].rsplit("/", 1)[1]
    description = schema["components"]["schemas"][ref]["properties"]["files"]["description"]
    for f in formats():
        assert f.name in description and all(s in description for s in f.suffixes)


def test_a_suffix_the_registry_lacks_is_refused_with_the_list_and_a_listed_one_is_taken(api: TestClient) -> None:
    refused = api.post("/v1/collections/default/documents", files={"files": ("notes.xyz", b"hello")})
    assert refused.status_code == 415
    assert all(s in refused.json()["detail"] for s in supported_suffixes())
    taken = api.post("/v1/collections/default/documents", files={"files": ("server.log", b"The disk filled at 03:00.")})
    assert taken.status_code == 202, taken.text
