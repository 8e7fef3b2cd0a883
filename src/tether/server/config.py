"""Server settings, as the CLI fills them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: list[str] = field(default_factory=list)
    max_body_bytes: int = 32 * 1024 * 1024
    websocket: bool = True
    #: seconds a WebSocket connection may live before `websocket_connection_limit_reached`
    ws_lifetime_seconds: float = 3600.0
    #: bytes of cached conversation state one connection may hold before evicting its older lanes
    ws_cache_bytes_per_connection: int = 256 * 1024 * 1024
    #: bytes of cached conversation state all connections together may hold
    ws_cache_bytes_total: int = 2 * 1024 * 1024 * 1024
    ws_max_named_lanes: int = 32
    ws_max_in_flight: int = 16
    #: seconds in-flight responses get to finish at shutdown before they are cancelled
    shutdown_grace_seconds: float = 10.0
