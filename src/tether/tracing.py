"""OpenTelemetry traces per turn (`tether serve --otel-traces otlp|console`, the `otel` extra).

Each finished turn becomes one SERVER span, `responses.create`, a child of the client's trace when the
request carried a W3C `traceparent` (Codex sends one in `client_metadata`), with the turn log's fields
as `tether.*` attributes. `otlp` exports over OTLP/HTTP (protobuf) to `--otel-endpoint`, else to what the
standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` say; `console` prints
each span as JSON on stdout. Spans are sent in batches off the event loop (the SDK's own thread).
"""

from __future__ import annotations

from typing import Any

from .core.turn_trace import TraceContext, TurnTracer, set_tracer

MODES = ("off", "otlp", "console")
#: the SDK's default waits 5 s before a batch; a turn's span should reach the collector sooner
EXPORT_DELAY_MS = 500


class OpenTelemetryTurnTracer:
    def __init__(self, mode: str, endpoint: str | None, service_name: str = "tether") -> None:
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
        except ImportError as exc:
            raise RuntimeError("--otel-traces needs the otel extra: pip install 'tether[otel]'") from exc
        exporter: SpanExporter
        if mode == "console":
            exporter = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        self.provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=EXPORT_DELAY_MS))
        self.tracer = self.provider.get_tracer("tether")
        self.propagator = TraceContextTextMapPropagator()
        self.server_kind = trace.SpanKind.SERVER
        self.failed_status = trace.Status(trace.StatusCode.ERROR, "the response failed")

    def record(self, fields: dict[str, Any], parent: TraceContext | None, start_ns: int, end_ns: int) -> None:
        context = None
        if parent is not None:
            carrier = {"traceparent": parent.traceparent}
            if parent.tracestate:
                carrier["tracestate"] = parent.tracestate
            context = self.propagator.extract(carrier)
        attributes = {f"tether.{key}": value for key, value in fields.items() if value is not None}
        span = self.tracer.start_span("responses.create", context=context, kind=self.server_kind,
                                      start_time=start_ns, attributes=attributes)
        if fields.get("status") == "failed":
            span.set_status(self.failed_status)
        span.end(end_time=end_ns)

    def shutdown(self) -> None:
        """Send what is still batched (at server stop)."""
        self.provider.shutdown()


def start_tracing(mode: str, endpoint: str | None) -> OpenTelemetryTurnTracer | None:
    """Install the turn tracer for `--otel-traces MODE` (None for `off`)."""
    if mode not in MODES:
        raise ValueError(f"unknown --otel-traces {mode!r} (known: {', '.join(MODES)})")
    if mode == "off":
        set_tracer(None)
        return None
    turn_tracer = OpenTelemetryTurnTracer(mode, endpoint)
    tracer: TurnTracer = turn_tracer
    set_tracer(tracer)
    return turn_tracer


def stop_tracing(turn_tracer: OpenTelemetryTurnTracer | None) -> None:
    set_tracer(None)
    if turn_tracer is not None:
        turn_tracer.shutdown()
