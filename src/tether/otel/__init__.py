"""OpenTelemetry export of Tether's sessions as GenAI spans (``execute_tool``, ``chat``).

Needs the ``otel`` extra (``pip install 'tether-guard[otel]'``); OTLP export also needs
``opentelemetry-exporter-otlp-proto-http``.
"""

from tether.otel._setup import Exporter, tracer_provider
from tether.otel._spans import SessionTracer

__all__ = ["Exporter", "SessionTracer", "tracer_provider"]
