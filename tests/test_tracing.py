"""OpenTelemetry traces: the span tree of one question and of one upload, read from the SDK's in-memory exporter
(the app in process, so the exporter is in reach); off unless the OTEL_* variables ask, checked in fresh processes;
and a real `docqa serve` writing its spans with the console exporter."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler
from opentelemetry.trace import StatusCode

from rerankers import model_dir  # noqa: F401 (fixture)
from server import DocqaServer, docqa_environment
from service import tracing
from service_app import make_app, wait_for_job

NOTE = b"# Ops\n\nThe staging cluster has 12 nodes.\n\n## Backups\n\nBackups are kept for thirty days.\n"
QUESTION = "How many nodes does the staging cluster have?"


class Switch(Sampler):
    """Samples while `on`; the module's teardown turns it off, since OpenTelemetry sets its provider once per
    process and the tests after these should not pay for spans."""

    on = True

    def should_sample(self, *args: Any, **kwargs: Any) -> Any:
        return (ALWAYS_ON if self.on else ALWAYS_OFF).should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return "switch"


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    sampler = Switch()
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    sampler.on = False
    tracing.uninstall()
    exporter.clear()


@pytest.fixture(scope="module")
def client(spans: InMemorySpanExporter, tmp_path_factory: pytest.TempPathFactory, embedder: Any,
           model_dir: Path) -> Iterator[TestClient]:  # noqa: F811
    app = make_app(tmp_path_factory.mktemp("tracing") / "data", embedder,
                   reranker={"model": str(model_dir), "candidates": 6})
    with TestClient(app) as c:
        yield c


def finished(spans: InMemorySpanExporter, root: str, want: set[str], timeout: float = 10) -> list[ReadableSpan]:
    """The spans of the one trace whose root is named `root`, once the spans named in `want` have all ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = spans.get_finished_spans()
        roots = [s for s in got if s.name == root and s.parent is None]
        if roots:
            trace_id = roots[0].context.trace_id
            mine = [s for s in got if s.context.trace_id == trace_id]
            if want <= {s.name for s in mine}:
                assert len(roots) == 1, [s.name for s in roots]
                return mine
        time.sleep(0.05)
    raise AssertionError(f"no finished trace {root} with {want}: {[s.name for s in spans.get_finished_spans()]}")


def children(trace: list[ReadableSpan], parent: ReadableSpan) -> list[str]:
    """Names of the spans whose parent is `parent`, in the order they started."""
    kids = [s for s in trace if s.parent is not None and s.parent.span_id == parent.context.span_id]
    return [s.name for s in sorted(kids, key=lambda s: s.start_time)]


def one(trace: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in trace if s.name == name]
    assert len(found) == 1, f"{len(found)} spans named {name}"
    return found[0]


def test_an_answer_is_one_trace_of_retrieve_evidence_generate_verify_with_the_request_id(
    client: TestClient, spans: InMemorySpanExporter,
) -> None:
    job = client.post("/v1/collections/default/documents", files={"files": ("ops.md", NOTE)}).json()
    assert wait_for_job(client, job["id"])["state"] == "succeeded"
    spans.clear()
    body = client.post("/v1/ask", json={"question": QUESTION}, headers={"X-Request-ID": "ask-trace-1"}).json()
    assert "12 nodes" in body["answer"]

    trace = finished(spans, "POST /v1/ask", {"answer", "verify"})
    root = one(trace, "POST /v1/ask")
    assert children(trace, root) == ["answer"]
    answer = one(trace, "answer")
    assert children(trace, answer) == ["retrieve", "evidence", "generate", "verify"]
    retrieve = one(trace, "retrieve")
    # BM25 runs on its own thread beside the query embedding: which of the two starts first is up to the threads
    stages = children(trace, retrieve)
    assert sorted(stages[:2]) == ["dense", "lexical"] and stages[2:] == ["fusion", "rerank"]
    assert {s.name for s in trace} == {"POST /v1/ask", "answer", "retrieve", "dense", "lexical", "fusion", "rerank",
                                       "evidence", "generate", "verify"}
    assert all(s.attributes.get(tracing.REQUEST_ID) == "ask-trace-1" for s in trace), \
        {s.name: s.attributes.get(tracing.REQUEST_ID) for s in trace}
    assert root.attributes["http.route"] == "/v1/ask"
    assert retrieve.attributes["docqa.collection"] == "default" and retrieve.attributes["docqa.k"] == 5
    assert retrieve.attributes["docqa.hits"] >= 1 and retrieve.attributes["docqa.mode"] == "hybrid"
    assert one(trace, "rerank").attributes["docqa.candidates"] >= 1
    assert answer.attributes["docqa.generator"] == "extractive" and answer.attributes["docqa.abstained"] is False
    assert one(trace, "verify").attributes["docqa.cited"] >= 1
    for name in ("retrieve", "answer"):  # a span covers its children
        parent = one(trace, name)
        kids = [s for s in trace if s.parent is not None and s.parent.span_id == parent.context.span_id]
        assert all(parent.start_time <= k.start_time and k.end_time <= parent.end_time for k in kids), name


def test_a_streamed_answer_and_a_search_are_traced_too(client: TestClient, spans: InMemorySpanExporter) -> None:
    spans.clear()
    with client.stream("POST", "/v1/ask", json={"question": QUESTION, "stream": True},
                       headers={"X-Request-ID": "stream-1"}) as response:
        assert "event: done" in "".join(response.iter_text())
    trace = finished(spans, "POST /v1/ask", {"answer", "verify"})
    assert children(trace, one(trace, "answer")) == ["retrieve", "evidence", "generate", "verify"]
    assert all(s.attributes.get(tracing.REQUEST_ID) == "stream-1" for s in trace)

    spans.clear()
    client.post("/v1/search", json={"query": "staging cluster", "mode": "dense"}, headers={"X-Request-ID": "search-1"})
    trace = finished(spans, "POST /v1/search", {"retrieve"})
    assert children(trace, one(trace, "POST /v1/search")) == ["retrieve"]
    assert children(trace, one(trace, "retrieve")) == ["dense", "fusion", "rerank"]
    assert one(trace, "retrieve").attributes["docqa.mode"] == "dense"
    assert all(s.attributes.get(tracing.REQUEST_ID) == "search-1" for s in trace)


def test_an_upload_is_one_trace_from_the_request_to_its_jobs_parse_chunk_embed_commit(
    client: TestClient, spans: InMemorySpanExporter,
) -> None:
    spans.clear()
    files = [("files", ("runbook.md", b"# Runbook\n\nRestart the ingest workers with the blue button.\n")),
             ("files", ("broken.pdf", b"%PDF-1.7 this is not a PDF"))]
    response = client.post("/v1/collections/default/documents", files=files, headers={"X-Request-ID": "upload-1"})
    job = wait_for_job(client, response.json()["id"])
    outcome = {f["source"].rsplit("/", 1)[-1]: f for f in job["files"]}
    assert outcome["runbook.md"]["status"] == "ingested" and outcome["broken.pdf"]["status"] == "failed"

    trace = finished(spans, "POST /v1/collections/{name}/documents", {"ingest"})
    root = one(trace, "POST /v1/collections/{name}/documents")
    assert children(trace, root) == ["ingest"]  # the job, in its own thread, continues the request's trace
    ingest = one(trace, "ingest")
    assert children(trace, ingest) == ["parse", "chunk", "parse", "embed", "commit"]
    assert all(s.attributes.get(tracing.REQUEST_ID) == "upload-1" for s in trace), \
        {s.name: s.attributes.get(tracing.REQUEST_ID) for s in trace}
    parses = {s.attributes["docqa.file"]: s for s in trace if s.name == "parse"}
    assert parses["runbook.md"].status.is_ok and parses["broken.pdf"].status.status_code is StatusCode.ERROR
    assert one(trace, "chunk").attributes == {"docqa.file": "runbook.md", "docqa.chunks": outcome["runbook.md"]["chunks"],
                                              tracing.REQUEST_ID: "upload-1"}
    assert one(trace, "embed").attributes["docqa.chunks"] == outcome["runbook.md"]["chunks"]
    commit = one(trace, "commit")
    assert commit.attributes["docqa.document_id"] == outcome["runbook.md"]["document_id"]
    assert ingest.attributes["docqa.files.ingested"] == 1 and ingest.attributes["docqa.files.failed"] == 1


# --- off unless asked, in fresh processes -------------------------------------------------------------

PROBE = """
import json, sys
from opentelemetry import trace
from service.tracing import configure_tracing
try:
    provider = configure_tracing()
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"})); sys.exit(0)
print(json.dumps({"provider": type(trace.get_tracer_provider()).__name__, "returned": provider is not None,
                  "sdk": "opentelemetry.sdk.trace" in sys.modules,
                  "service": provider.resource.attributes.get("service.name") if provider else None}))
"""


def probe(env: dict[str, str]) -> dict[str, Any]:
    clean = {k: v for k, v in docqa_environment().items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_otel_variables_nothing_is_installed_and_the_sdk_is_not_even_imported() -> None:
    assert probe({}) == {"provider": "ProxyTracerProvider", "returned": False, "sdk": False, "service": None}
    assert probe({"OTEL_TRACES_EXPORTER": "none", "OTEL_SERVICE_NAME": "x"})["returned"] is False
    assert probe({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"})["returned"] is False


def test_otel_variables_install_the_sdk_with_their_exporter_and_service_name() -> None:
    assert probe({"OTEL_TRACES_EXPORTER": "console"}) == {"provider": "TracerProvider", "returned": True, "sdk": True,
                                                          "service": "docqa"}
    endpoint = probe({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SERVICE_NAME": "kb-prod"})
    assert endpoint["returned"] is True and endpoint["service"] == "kb-prod"
    bad = probe({"OTEL_TRACES_EXPORTER": "zipkin"})
    assert "OTEL_TRACES_EXPORTER names 'zipkin', which is not installed" in bad["error"] and "console" in bad["error"]
    grpc = probe({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert "OTEL_EXPORTER_OTLP_PROTOCOL='grpc' is not supported" in grpc["error"]


# --- a real server ------------------------------------------------------------------------------------------


def console_spans(log: str) -> list[dict[str, Any]]:
    """The JSON spans the console exporter wrote among the server's JSON log lines."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := log.find("{", at)) != -1:
        try:
            value, end = decoder.raw_decode(log, at)
        except json.JSONDecodeError:
            at += 1
            continue
        if isinstance(value, dict) and "context" in value and "parent_id" in value:
            found.append(value)
        at = end
    return found


@pytest.mark.slow
def test_docqa_serve_exports_its_spans_where_otel_traces_exporter_says(tmp_path: Path) -> None:
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "docqa-e2e"}
    with DocqaServer(tmp_path, env=env) as server:
        with httpx.Client(base_url=server.base_url, timeout=120) as c:
            c.post("/v1/collections/default/documents", files={"files": ("ops.md", NOTE)})
            deadline = time.monotonic() + 60
            while c.post("/v1/search", json={"query": "staging"}).json()["hits"] == [] and time.monotonic() < deadline:
                time.sleep(0.2)
            assert c.post("/v1/ask", json={"question": QUESTION}, headers={"X-Request-ID": "served-1"}).status_code == 200
    spans = [s for s in console_spans(server.log_path.read_text()) if s["attributes"].get(tracing.REQUEST_ID) == "served-1"]
    by_id = {s["context"]["span_id"]: s for s in spans}
    names = {s["name"] for s in spans}
    assert {"POST /v1/ask", "answer", "retrieve", "dense", "lexical", "fusion", "evidence", "generate", "verify"} <= names
    dense = next(s for s in spans if s["name"] == "dense")
    chain = [dense["name"]]
    while dense["parent_id"] in by_id:
        dense = by_id[dense["parent_id"]]
        chain.append(dense["name"])
    assert chain == ["dense", "retrieve", "answer", "POST /v1/ask"]
    assert all(s["resource"]["attributes"]["service.name"] == "docqa-e2e" for s in spans)


@pytest.mark.slow
def test_docqa_ingest_traces_its_run_with_the_console_exporter(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "ops.md").write_bytes(NOTE)
    env = {**{k: v for k, v in docqa_environment().items() if not k.startswith("OTEL_")},
           "OTEL_TRACES_EXPORTER": "console"}
    done = subprocess.run([sys.executable, "-c", "from service.cli import main; main()", "--data-dir",
                           str(tmp_path / "data"), "ingest", str(tmp_path / "docs"), "--json"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["counts"]["ingested"] == 1  # the spans went to stderr, stdout is the report
    spans = console_spans(done.stderr)
    by_name = {s["name"]: s for s in spans}
    assert {"ingest", "parse", "chunk", "embed", "commit"} <= set(by_name)
    root = by_name["ingest"]
    assert all(by_name[n]["parent_id"] == root["context"]["span_id"] for n in ("parse", "chunk", "embed", "commit"))
    assert root["attributes"]["docqa.files.ingested"] == 1
