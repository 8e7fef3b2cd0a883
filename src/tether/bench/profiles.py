"""Model speed profiles (what the scripted backend simulates) and network profiles (what the proxy adds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ModelProfile:
    name: str
    tokens_per_second: float
    ttft_ms: float
    prefill_tokens_per_second: float

    def script_settings(self) -> dict[str, Any]:
        return {"tokens_per_second": self.tokens_per_second, "ttft_ms": self.ttft_ms,
                "prefill_tokens_per_second": self.prefill_tokens_per_second}

    def model_seconds(self, usage: dict[str, Any]) -> float:
        """What the simulated model spends on a turn: first token, uncached prompt tokens, output tokens."""
        details = usage.get("input_tokens_details") or {}
        uncached = int(usage.get("input_tokens", 0)) - int(details.get("cached_tokens", 0))
        return (self.ttft_ms / 1000 + max(0, uncached) / self.prefill_tokens_per_second
                + int(usage.get("output_tokens", 0)) / self.tokens_per_second)


@dataclass(frozen=True, slots=True)
class NetworkProfile:
    name: str
    rtt_ms: float = 0.0  # added round-trip time, split evenly between directions
    mbit_per_s: float | None = None  # per direction; None: unlimited

    @property
    def proxied(self) -> bool:
        return self.rtt_ms > 0 or self.mbit_per_s is not None

    def describe(self) -> str:
        if not self.proxied:
            return "loopback, direct"
        rate = f"{self.mbit_per_s:g} Mbit/s per direction" if self.mbit_per_s else "unlimited bandwidth"
        return f"delay proxy: +{self.rtt_ms:g} ms RTT, {rate}"


# GPT-5-class speed (the article's 65 tok/s) and Codex-Spark-class speed (1,000 tok/s); `instant` takes
# no model time at all, so a rollout is nothing but the API's own cost.
MODEL_PROFILES = {
    "65tps": ModelProfile("65tps", 65.0, ttft_ms=400.0, prefill_tokens_per_second=4_000.0),
    "1000tps": ModelProfile("1000tps", 1000.0, ttft_ms=50.0, prefill_tokens_per_second=40_000.0),
    "instant": ModelProfile("instant", 1e9, ttft_ms=0.0, prefill_tokens_per_second=1e12),
}
SMOKE_PROFILE = ModelProfile("smoke", 20_000.0, ttft_ms=1.0, prefill_tokens_per_second=1_000_000.0)
NETWORK_PROFILES = {
    "loopback": NetworkProfile("loopback"),
    "wan": NetworkProfile("wan", rtt_ms=40.0, mbit_per_s=20.0),
    "wan50": NetworkProfile("wan50", rtt_ms=40.0, mbit_per_s=50.0),
}
#: what `tether bench` runs unless told otherwise (`wan50` on request)
DEFAULT_NETWORKS = ("loopback", "wan")
