"""Prometheus metrics of the turn engine and WebSocket connections (served at `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TURN_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _Metrics:
    def __init__(self) -> None:
        self.responses = Counter("tether_responses", "Responses by final status", ["status", "transport"])
        self.turn_server_seconds = Histogram(
            "tether_turn_server_seconds",
            "Server time per turn: wall time from request to terminal event, less the model's own time",
            ["transport"],
            buckets=TURN_BUCKETS,
        )
        self.session_hits = Counter("tether_backend_session_reuse", "Turns that continued a live backend session")
        self.session_misses = Counter(
            "tether_backend_session_fresh", "Turns that needed a fresh backend session (full render)"
        )
        self.items_handed = Counter(
            "tether_backend_items_handed", "Context items handed to backend sessions to render", ["transport"]
        )
        self.ws_connections = Gauge("tether_ws_connections", "Open WebSocket connections")
        self.ws_lanes = Gauge("tether_ws_lanes", "Named lanes open across WebSocket connections")
        self.cache_hits = Counter("tether_ws_cache_hits", "previous_response_id found in the connection cache")
        self.cache_misses = Counter("tether_ws_cache_misses", "previous_response_id not in the connection cache")
        self.store_hydrations = Counter("tether_store_hydrations", "Chains rebuilt from the store", ["transport"])
        self.cache_evictions = Counter("tether_ws_cache_evictions", "Cached responses evicted", ["reason"])
        self.cached_bytes = Gauge("tether_ws_cache_bytes", "Approximate bytes held in WebSocket connection caches")


METRICS = _Metrics()
