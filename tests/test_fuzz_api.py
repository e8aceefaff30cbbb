"""Fuzzing: every parser on random bytes, and every route against the live OpenAPI schema (schemathesis).

Parsers may only return a document or raise ParseError / UnsupportedMediaType / LimitExceeded, quickly.
Routes may answer anything the schema declares, but never a 5xx and never a body that breaks the schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import schemathesis
from schemathesis import GenerationMode
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from indexes.errors import LimitExceeded, ParseError, UnsupportedMediaType
from ingest.parsers import ParsedDocument, parse_bytes, supported_suffixes
from service_app import context, make_app

pytestmark = pytest.mark.slow

PREFIXES = [b"", b"%PDF-1.4\n", b"PK\x03\x04", b"<html><body>", b"# Heading\n\n", b"\xef\xbb\xbf", b"\xff\xfe"]


@pytest.mark.parametrize("suffix", sorted(supported_suffixes()))
@settings(max_examples=40, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from(PREFIXES), data=st.binary(max_size=4096))
def test_every_parser_fails_cleanly_on_random_bytes(suffix: str, prefix: bytes, data: bytes) -> None:
    try:
        document = parse_bytes(prefix + data, f"random{suffix}")
    except (ParseError, UnsupportedMediaType, LimitExceeded) as exc:
        assert str(exc).strip()
        return
    assert isinstance(document, ParsedDocument) and document.text.strip()
    for section in document.sections:
        assert document.text[section.start : section.end] == section.text


# -- the HTTP API ----------------------------------------------------------------------------------

UPLOAD = "^/v1/collections/{name}/documents$"  # multipart uploads start background ingestion: kept out


@pytest.fixture(scope="module", params=["auth-off", "auth-on"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, embedder) -> Iterator[tuple]:
    root = tmp_path_factory.mktemp(request.param)
    (root / "docs").mkdir()
    (root / "docs" / "ops.md").write_text("# Ops\n\nThe staging cluster has 12 nodes.\n")
    auth = {"enabled": request.param == "auth-on"}
    app = make_app(root / "data", embedder, auth=auth, server_paths=[root / "docs"])
    with TestClient(app) as client:
        headers = {}
        if auth["enabled"]:
            headers = {"Authorization": f"Bearer {context(app).keys.create('admin')[1]}"}
        job = client.post("/v1/collections/default/documents/from-path", json={"path": str(root / "docs")}, headers=headers)
        assert job.status_code == 202, job.text
        yield app, headers


def pin_to_the_real_collection(case) -> None:
    """Random names almost never hit a collection that exists; half the cases go to `default`, which holds a document."""
    if isinstance(case.body, dict) and "collection" in case.body:
        case.body["collection"] = "default"
    if isinstance(case.body, dict) and isinstance(case.body.get("model"), str):
        case.body["model"] = "docqa:default"
    if case.path_parameters and "name" in case.path_parameters:
        case.path_parameters["name"] = "default"


def test_no_route_answers_5xx_or_breaks_its_schema(api: tuple) -> None:
    app, headers = api
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path_regex=UPLOAD, method="POST")
    failures = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=st.one_of(operation.as_strategy(), operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)),
               pin=st.booleans())
        def fuzz(case, pin: bool) -> None:
            if pin and case.method != "DELETE":
                pin_to_the_real_collection(case)
            case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance])

        try:
            fuzz()
        except Exception as exc:  # noqa: BLE001 - gather every operation's failure, then report them together
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{why}" for label, why in failures.items())
