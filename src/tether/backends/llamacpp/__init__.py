"""The embedded llama.cpp backend: one loaded GGUF, one engine thread, a KV sequence per active conversation."""

from __future__ import annotations

from ..settings import LlamaCppSettings
from .backend import LlamaCppBackend
from .model_file import resolve_model_path

__all__ = ["LlamaCppBackend", "make_llamacpp_backend"]


def make_llamacpp_backend(settings: LlamaCppSettings) -> LlamaCppBackend:
    """The backend `tether serve` runs from its settings (`--model`, `--ctx`, `--parallel`, `--threads`,
    `--kv-budget-mb`)."""
    return LlamaCppBackend(
        resolve_model_path(settings.model),
        n_ctx=settings.ctx,
        threads=settings.threads,
        kv_budget_mb=settings.kv_budget_mb,
        parallel=settings.parallel,
    )
