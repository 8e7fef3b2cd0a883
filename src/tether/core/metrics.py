"""Prometheus metrics of the turn engine and WebSocket connections (served at `/metrics`)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: collectors that read one process's live state at scrape time (not prometheus_client metric objects,
#: which `--workers` adds up across processes): rendered after them by `/metrics`
PROCESS_COLLECTORS = CollectorRegistry(auto_describe=True)  # describes by collecting: a second engine is refused

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
        self.ws_connections = Gauge("tether_ws_connections", "Open WebSocket connections", multiprocess_mode="livesum")
        self.ws_lanes = Gauge(
            "tether_ws_lanes", "Named lanes open across WebSocket connections", multiprocess_mode="livesum"
        )
        self.cache_hits = Counter("tether_ws_cache_hits", "previous_response_id found in the connection cache")
        self.cache_misses = Counter("tether_ws_cache_misses", "previous_response_id not in the connection cache")
        self.prompt_cache_diagnostics = Counter(
            "tether_prompt_cache_diagnostics", "Responses by their prompt_cache_diagnostics type", ["type"]
        )
        self.prompt_cache_misses = Counter(
            "tether_prompt_cache_misses", "Responses whose prompt could not reuse the compared one's, by reason",
            ["reason"],
        )
        self.store_hydrations = Counter(
            "tether_store_hydrations",
            "Parents resolved from the store: chains read whole, or recalled from the recent responses",
            ["transport"],
        )
        self.recent_responses = Counter(
            "tether_recent_responses",
            "Continuations of a recently committed response served from memory (hit) or, after a deletion, "
            "read from the store again (stale)",
            ["result"],
        )
        self.recent_response_bytes = Gauge(
            "tether_recent_response_bytes", "Approximate bytes held by the recently committed responses kept",
            multiprocess_mode="livesum",
        )
        self.cache_evictions = Counter("tether_ws_cache_evictions", "Cached responses evicted", ["reason"])
        self.cached_bytes = Gauge(
            "tether_ws_cache_bytes", "Approximate bytes held in WebSocket connection caches",
            multiprocess_mode="livesum",
        )
        # The upstream backend's engine pool, per replica (its chat-completions base URL).
        self.upstream_in_flight = Gauge(
            "tether_upstream_in_flight", "Requests in flight to each engine replica", ["replica"],
            multiprocess_mode="livesum",
        )
        self.upstream_conversations = Gauge(
            "tether_upstream_conversations", "Conversations pinned to each engine replica", ["replica"],
            multiprocess_mode="livesum",
        )
        self.upstream_healthy = Gauge(
            "tether_upstream_healthy", "1 while an engine replica is taken as healthy, else 0", ["replica"],
            multiprocess_mode="livemin",  # under --workers: 0 while any worker takes it as down
        )
        self.upstream_requests = Counter(
            "tether_upstream_requests", "Chat-completions requests sent to each engine replica", ["replica"]
        )
        self.upstream_failures = Counter(
            "tether_upstream_failures",
            "Failed requests and health checks per engine replica, by kind",
            ["replica", "kind"],
        )
        self.upstream_failovers = Counter(
            "tether_upstream_failovers",
            "Conversations moved off an engine replica that failed (their full context is replayed elsewhere)",
            ["replica"],
        )
        self.upstream_retries = Counter(
            "tether_upstream_retries",
            "Requests sent again on a fresh connection after a kept-alive one closed without answering",
            ["replica"],
        )
        self.upstream_prompt_tokens = Counter(
            "tether_upstream_prompt_tokens", "Prompt tokens each engine replica reported", ["replica"]
        )
        self.upstream_cached_tokens = Counter(
            "tether_upstream_cached_tokens", "Prompt tokens each engine replica served from its cache", ["replica"]
        )
        self.upstream_cached_share = Gauge(
            "tether_upstream_cached_token_share",
            "Share of the prompt tokens each engine replica served from its cache, since start",
            ["replica"],
            multiprocess_mode="liveall",  # a ratio is not summed: one sample per worker (label `pid`)
        )


METRICS = _Metrics()

_CHILDREN: dict[tuple[int, tuple[str, ...]], Any] = {}


def labelled(metric: Any, *values: str) -> Any:
    """`metric.labels(*values)`, looked up once per label set: prometheus_client's own lookup (a lock
    and the label checks) was a few per cent of a cached WebSocket turn's CPU under load."""
    key = (id(metric), values)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*values)
    return child
