"""The embedded engine's figures at `/metrics`: slots, resident and parked KV memory, and its counters,
read from `Engine.stats()` at each scrape (the same numbers `/health` shows)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ...core.metrics import PROCESS_COLLECTORS

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("tether.llamacpp")
PREFIX = "tether_llamacpp_"
GAUGES = {
    # name: (help, path into stats())
    "slots": ("KV slots: conversations resident at once (llama.cpp sequences)", ("slots", "count")),
    "slots_busy": ("Slots serving an active turn", ("slots", "busy")),
    "resident_tokens": ("Tokens whose KV the slots hold", ("slots", "resident_tokens")),
    "kv_resident_bytes": ("KV memory allocated for the slots", ("slots", "kv_bytes")),
    "kv_resident_used_bytes": ("KV memory the slots' tokens fill", ("slots", "kv_bytes_used")),
    "kv_parked_bytes": ("Parked KV state in host memory", ("kv_store", "bytes")),
    "kv_parked_budget_bytes": ("Budget for parked KV state (--kv-budget-mb)", ("kv_store", "budget_bytes")),
    "kv_parked_entries": ("Parked conversations", ("kv_store", "entries")),
    "active_turns": ("Turns submitted and not finished", ("active_turns",)),
    "waiting_turns": ("Turns waiting for a slot", ("waiting_turns",)),
    "threads": ("CPU threads the engine uses now", ("threads", "current")),
    "threads_most": ("CPU threads the engine may use", ("threads", "most")),
}


class EngineCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def register(cls, engine: Engine) -> EngineCollector | None:
        collector = cls(engine)
        try:
            PROCESS_COLLECTORS.register(collector)
        except ValueError:  # another engine in this process already reports (tests load several)
            log.info("engine metrics already registered; this engine's are in /health only")
            return None
        return collector

    def unregister(self) -> None:
        PROCESS_COLLECTORS.unregister(self)

    def collect(self) -> Iterator[Metric]:
        stats = self.engine.stats()
        for name, (help_text, path) in GAUGES.items():
            value: Any = stats
            for key in path:
                value = value[key]
            yield GaugeMetricFamily(PREFIX + name, help_text, value=float(value))
        for name, value in self.engine.counters.items():
            yield CounterMetricFamily(PREFIX + name, f"Engine counter: {name.replace('_', ' ')}", value=float(value))
        yield CounterMetricFamily(PREFIX + "parked_evictions", "Parked states dropped for the budget",
                                  value=float(stats["kv_store"]["evictions"]))
