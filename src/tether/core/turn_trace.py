"""A trace span per turn, when the server was asked for traces (`--otel-traces`).

Core only says what a turn was (the turn log's fields, its wall-clock start and end, the client's
W3C trace context); the exporter behind `TurnTracer` (`tether.tracing`, OpenTelemetry) is optional
and lives outside core, so a server without the `otel` extra never imports it.

The client's trace context comes per turn: Codex puts `traceparent`/`tracestate` in each request's
`client_metadata` (a WebSocket's handshake headers belong to the socket, not to a turn); an HTTP
request may send them as headers instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

#: W3C trace context, version 00: version-traceid-parentid-flags (lowercase hex, ids not all zero)
TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")


@dataclass(frozen=True, slots=True)
class TraceContext:
    traceparent: str
    tracestate: str | None = None

    @property
    def trace_id(self) -> str:
        return self.traceparent.split("-")[1]

    @property
    def parent_span_id(self) -> str:
        return self.traceparent.split("-")[2]


def trace_context_of(metadata: Mapping[str, str], headers: Mapping[str, str] | None = None) -> TraceContext | None:
    """The client's trace context for this turn: `client_metadata` first, then the request's headers.
    A malformed `traceparent` is ignored (it is the client's telemetry, not a reason to fail a turn)."""
    for source in (metadata, headers or {}):
        parent = source.get("traceparent")
        if isinstance(parent, str) and TRACEPARENT.match(parent.strip().lower()):
            state = source.get("tracestate")
            return TraceContext(parent.strip().lower(), state if isinstance(state, str) and state else None)
    return None


class TurnTracer(Protocol):
    def record(self, fields: dict[str, Any], parent: TraceContext | None, start_ns: int, end_ns: int) -> None:
        """One finished turn: `fields` as the turn log has them, wall-clock nanoseconds."""


_tracer: TurnTracer | None = None


def set_tracer(tracer: TurnTracer | None) -> None:
    global _tracer
    _tracer = tracer


def tracer() -> TurnTracer | None:
    return _tracer
