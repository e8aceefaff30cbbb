"""OpenTelemetry traces: off unless the standard OTEL_* variables ask for them.

`configure_tracing()` runs once per process at the edge (create_app, the `docqa` command). It installs the SDK's
tracer provider only when OTEL_TRACES_EXPORTER names an exporter other than `none`, or an OTLP endpoint is set
(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), and OTEL_SDK_DISABLED is not true. The SDK
and the exporters read the rest of their own variables: OTEL_SERVICE_NAME (docqa when unset),
OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_BSP_*, OTEL_EXPORTER_OTLP_HEADERS and the like. Otherwise
nothing is installed: every span docqa makes is the API's no-op, and the app is not instrumented.

docqa's own spans (ingest, parse, chunk, embed, commit; answer, retrieve, dense, lexical, fusion, rerank,
evidence, generate, verify) come from `opentelemetry.trace.get_tracer` where the work is done. Each span started
while a request is handled carries its request id as `docqa.request_id`, in worker threads too: the id is a
context variable (service/logs.py) that FastAPI's threadpool, the job runner and the BM25 threads carry along.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Mapping

from opentelemetry import trace

from indexes.errors import InvalidInput
from service.logs import request_id_var

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider

REQUEST_ID = "docqa.request_id"
NOT_TRACED = "/healthz$,/readyz$,/metrics$"  # probes and scrapes would bury the traces that matter
_installed: "TracerProvider | None" = None


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The trace exporters the variables ask for; none means tracing stays off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    given = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if given:
        return [n.strip() for n in given.split(",") if n.strip() and n.strip() != "none"]
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return ["otlp"] if endpoint else []


def configure_tracing(environ: Mapping[str, str] = os.environ) -> "TracerProvider | None":
    """Install the SDK's tracer provider if the OTEL_* variables ask for traces (once per process); the provider,
    or None when tracing is off. InvalidInput names an exporter or protocol that is not installed."""
    if _installed is not None:
        return _installed
    names = exporter_names(environ)
    if not names:
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporters = [_exporter(name, environ) for name in names]
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = Resource.create({SERVICE_NAME: "docqa"})
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return install(provider)


def _exporter(name: str, environ: Mapping[str, str]) -> Any:
    """One span exporter by its OTEL_TRACES_EXPORTER name: otlp (over HTTP/protobuf), console (JSON to stderr),
    or any installed under the `opentelemetry_traces_exporter` entry points."""
    if name == "otlp":
        protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        if protocol not in (None, "", "http/protobuf"):
            raise InvalidInput(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported: docqa exports traces"
                               " over OTLP/HTTP (http/protobuf)")
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":  # to stderr: stdout carries `--json` output and the MCP stdio protocol
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)
    from importlib.metadata import entry_points

    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        known = sorted({"otlp", *(e.name for e in entry_points(group="opentelemetry_traces_exporter"))})
        raise InvalidInput(f"OTEL_TRACES_EXPORTER names {name!r}, which is not installed; installed: {known}")
    return next(iter(found)).load()()


def install(provider: "TracerProvider") -> "TracerProvider":
    """Make `provider` the process's tracer provider, stamping request ids on its spans (tests install one with
    an in-memory exporter this way)."""
    global _installed
    provider.add_span_processor(_request_id_stamp())
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        raise RuntimeError("another tracer provider was installed in this process first")
    _installed = provider
    return provider


def uninstall() -> None:
    """Stop instrumenting new apps (the API's global provider stays: OpenTelemetry sets it once per process)."""
    global _installed
    _installed = None


def instrument(app: "FastAPI") -> None:
    """Trace the app's requests (one server span per request, named by its route) if tracing is on."""
    if _installed is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, tracer_provider=_installed, excluded_urls=NOT_TRACED,
                                       exclude_spans=["receive", "send"])


def _request_id_stamp() -> Any:
    """A span processor that puts the request id of the context a span starts in on the span."""
    from opentelemetry.sdk.trace import SpanProcessor

    class RequestIdStamp(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            request_id = request_id_var.get()
            if request_id:
                span.set_attribute(REQUEST_ID, request_id)

    return RequestIdStamp()
