"""Server settings, as the CLI fills them (one home for every server default)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.book import RECENT_RESPONSE_BYTES
from ..core.connection import ConnectionLimits


@dataclass(slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: list[str] = field(default_factory=list)
    max_body_bytes: int = 32 * 1024 * 1024
    #: open connections (HTTP and WebSocket) before new ones get 503; None: what the descriptors allow
    max_connections: int | None = None
    websocket: bool = True
    #: seconds a WebSocket connection may live before `websocket_connection_limit_reached`
    ws_lifetime_seconds: float = 3600.0
    #: bytes of cached conversation state one connection may hold before evicting its older lanes
    ws_cache_bytes_per_connection: int = 256 * 1024 * 1024
    #: bytes of cached conversation state all connections together may hold
    ws_cache_bytes_total: int = 2 * 1024 * 1024 * 1024
    #: bytes of recently committed `store: true` contexts kept for continuations (`core/recent.py`)
    recent_response_bytes: int = RECENT_RESPONSE_BYTES
    ws_max_named_lanes: int = 32
    ws_max_in_flight: int = 16
    #: creates one connection may have waiting, and their bytes, before the server stops reading it
    ws_max_queued: int = 64
    ws_max_queued_bytes: int = 16 * 1024 * 1024
    #: seconds in-flight responses get to finish at shutdown before they are cancelled
    shutdown_grace_seconds: float = 10.0
    #: permessage-deflate when a client offers it (server/ws_protocol.py): "auto" (tether's selective
    #: compression for clients elsewhere or behind a proxy, none for a client on this machine),
    #: "deflate" (whenever offered) or "off" (declined: every message goes uncompressed)
    ws_compression: str = "auto"
    #: a trace span per turn (`tether.tracing`): "off", "otlp" (OTLP/HTTP to `otel_endpoint`, else the
    #: standard OTEL_EXPORTER_OTLP_* variables) or "console"
    otel_traces: str = "off"
    otel_endpoint: str | None = None

    def connection_limits(self) -> ConnectionLimits:
        return ConnectionLimits(
            max_in_flight=self.ws_max_in_flight,
            max_named_lanes=self.ws_max_named_lanes,
            lifetime_seconds=self.ws_lifetime_seconds,
            max_queued=self.ws_max_queued,
            max_queued_bytes=self.ws_max_queued_bytes,
            cache_bytes=self.ws_cache_bytes_per_connection,
        )
