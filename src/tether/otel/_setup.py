"""A tracer provider for ``tether run --otel``: the exporter is chosen by name, configured by the
standard ``OTEL_*`` environment variables (read by the OpenTelemetry SDK itself: endpoint, headers,
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``)."""

from __future__ import annotations

from typing import Literal

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from tether.errors import ConfigError

Exporter = Literal["otlp", "console"]
"""``otlp``: OTLP over HTTP (``OTEL_EXPORTER_OTLP_ENDPOINT``, default ``http://localhost:4318``); ``console``: stdout."""


def tracer_provider(exporter: Exporter) -> TracerProvider:
    """A provider that batches spans to ``exporter`` (call ``shutdown()`` at exit to flush)."""
    chosen: SpanExporter
    if exporter == "console":
        chosen = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter,
            )
        except ImportError:
            raise ConfigError("--otel otlp needs the OTLP exporter: pip install opentelemetry-exporter-otlp-proto-http") from None
        chosen = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create())  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    provider.add_span_processor(BatchSpanProcessor(chosen))
    return provider
