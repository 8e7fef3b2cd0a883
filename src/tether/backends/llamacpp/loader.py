"""Loading a GGUF into a `Llama` context, and what the rest of the backend reads from it."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
import llama_cpp.llama as llama_module
from llama_cpp import Llama

# Extra weight buffer types (AMX, repacking) crash on some virtualised CPUs that advertise AMX without
# granting it; they are off unless asked for, at little cost for small models.
EXTRA_BUFTS_ENV = "TETHER_LLAMA_EXTRA_BUFTS"
_PATCH_LOCK = threading.Lock()
# The bindings module as `Llama.__init__` sees it (untyped there).
_BINDINGS: Any = vars(llama_module)["llama_cpp"]


@dataclass(frozen=True, slots=True)
class LoadedModel:
    llama: Llama
    path: Path
    chat_template: str | None
    bos_text: str
    eos_text: str
    add_bos: bool
    load_seconds: float


@contextlib.contextmanager
def _model_params(use_extra_bufts: bool) -> Iterator[None]:
    """`Llama` builds its model params inside `__init__` with no way to pass `use_extra_bufts`."""
    original = _BINDINGS.llama_model_default_params

    def patched() -> Any:
        params = original()
        params.use_extra_bufts = use_extra_bufts
        return params

    with _PATCH_LOCK:
        _BINDINGS.llama_model_default_params = patched
        try:
            yield
        finally:
            _BINDINGS.llama_model_default_params = original


def _token_text(llama: Llama, token: int) -> str:
    if token < 0:
        return ""
    return llama.detokenize([token], special=True).decode("utf-8", errors="replace")


def load_model(path: Path, n_ctx: int, n_threads: int | None) -> LoadedModel:
    started = time.perf_counter()
    threads = n_threads or max(1, os.cpu_count() or 1)
    with _model_params(os.environ.get(EXTRA_BUFTS_ENV) == "1"):
        llama = Llama(
            str(path),
            n_ctx=n_ctx,
            n_batch=min(512, n_ctx),
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
    metadata = llama.metadata
    add_bos = bool(llama_cpp.llama_vocab_get_add_bos(llama._model.vocab))
    return LoadedModel(
        llama=llama,
        path=path,
        chat_template=metadata.get("tokenizer.chat_template"),
        bos_text=_token_text(llama, llama.token_bos()),
        eos_text=_token_text(llama, llama.token_eos()),
        add_bos=add_bos,
        load_seconds=time.perf_counter() - started,
    )
