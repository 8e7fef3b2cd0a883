"""The embedded llama.cpp backend: one loaded GGUF, one engine thread, per-conversation KV state."""

from __future__ import annotations

import argparse

from .backend import LlamaCppBackend
from .model_file import resolve_model_path

__all__ = ["LlamaCppBackend", "make_llamacpp_backend"]


def make_llamacpp_backend(args: argparse.Namespace) -> LlamaCppBackend:
    """The backend `tether serve` runs from its flags (`--model`, `--ctx`, `--threads`, `--kv-budget-mb`)."""
    return LlamaCppBackend(
        resolve_model_path(getattr(args, "model", None)),
        n_ctx=getattr(args, "ctx", 8192),
        threads=getattr(args, "threads", None),
        kv_budget_mb=getattr(args, "kv_budget_mb", 512),
    )
