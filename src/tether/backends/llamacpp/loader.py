"""Loading a GGUF: the model (weights and vocabulary) and one llama.cpp context with a KV sequence per slot.

The context is built with the low-level API rather than `Llama`, which has one sequence and no way to ask
for more. Each slot's sequence gets its own KV stream (`kv_unified` off), `n_ctx_slot` cells long: a
sequence's attention then spans only its own cells, as when it runs alone, so batching it with other
sequences neither slows its attention nor changes its numbers.
"""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp import _internals
from llama_cpp._logger import set_verbose

# Extra weight buffer types (AMX, repacking) crash on some virtualised CPUs that advertise AMX without
# granting it; they are off unless asked for, at little cost for small models.
EXTRA_BUFTS_ENV = "TETHER_LLAMA_EXTRA_BUFTS"
N_BATCH = 512  # the most tokens one llama_decode takes (decode tokens plus a prefill chunk)
F16_BYTES = 2


@dataclass(frozen=True, slots=True)
class ContextShape:
    """How the context is laid out: `slots` sequences of `n_ctx_slot` cells each, `threads` CPU threads."""

    slots: int
    n_ctx_slot: int
    threads: int
    flash_attn: bool = False


@dataclass(slots=True)
class LoadedModel:
    model: _internals.LlamaModel
    context: _internals.LlamaContext
    shape: ContextShape
    path: Path
    chat_template: str | None
    bos_text: str
    eos_text: str
    add_bos: bool
    load_seconds: float
    kv_bytes_per_token: int

    @property
    def vocab(self) -> Any:  # llama_vocab_p
        return self.model.vocab

    @property
    def ctx(self) -> Any:  # llama_context_p
        return self.context.ctx

    def tokenize(self, text: bytes, *, add_bos: bool, special: bool = True) -> list[int]:
        tokens: list[int] = self.model.tokenize(text, add_bos=add_bos, special=special)
        return tokens

    def piece(self, token: int) -> bytes:
        """The bytes of one token, special tokens spelled out (so the text renders back to the same tokens)."""
        return token_piece(self.vocab, token)

    def close(self) -> None:
        self.context.close()  # type: ignore[no-untyped-call]
        self.model.close()  # type: ignore[no-untyped-call]


def token_piece(vocab: llama_cpp.llama_vocab_p, token: int) -> bytes:
    size = 64
    while True:
        buffer = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, token, buffer, size, 0, True)
        if n >= 0:
            return buffer.raw[:n]
        size = -n


def _token_text(vocab: llama_cpp.llama_vocab_p, token: int) -> str:
    if token < 0:
        return ""
    return token_piece(vocab, token).decode("utf-8", errors="replace")


def _kv_bytes_per_token(model: llama_cpp.llama_model_p) -> int:
    """f16 K and V for every layer's KV heads: what one cell of a sequence costs."""
    n_layer = llama_cpp.llama_model_n_layer(model)
    n_head = max(1, llama_cpp.llama_model_n_head(model))
    head_dim = llama_cpp.llama_model_n_embd(model) // n_head
    return int(2 * n_layer * llama_cpp.llama_model_n_head_kv(model) * head_dim * F16_BYTES)


def load_model(path: Path, shape: ContextShape) -> LoadedModel:
    started = time.perf_counter()
    set_verbose(False)  # llama.cpp's own log: errors only, as `Llama(verbose=False)` has it
    model_params = llama_cpp.llama_model_default_params()
    model_params.use_extra_bufts = os.environ.get(EXTRA_BUFTS_ENV) == "1"
    model = _internals.LlamaModel(path_model=str(path), params=model_params, verbose=False)
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = shape.slots * shape.n_ctx_slot
    params.n_batch = params.n_ubatch = min(N_BATCH, params.n_ctx)
    params.n_seq_max = shape.slots
    params.kv_unified = False
    params.n_threads = params.n_threads_batch = shape.threads
    params.flash_attn_type = (
        llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if shape.flash_attn else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    )
    params.no_perf = True
    try:
        context = _internals.LlamaContext(model=model, params=params, verbose=False)
        cells = llama_cpp.llama_n_ctx_seq(context.ctx)
        if cells < shape.n_ctx_slot:
            context.close()  # type: ignore[no-untyped-call]
            raise ValueError(f"llama.cpp gave each sequence {cells} cells, fewer than --ctx {shape.n_ctx_slot}")
    except Exception:
        model.close()  # type: ignore[no-untyped-call]
        raise
    vocab = model.vocab
    metadata = model.metadata()
    return LoadedModel(
        model=model,
        context=context,
        shape=shape,
        path=path,
        chat_template=metadata.get("tokenizer.chat_template"),
        bos_text=_token_text(vocab, llama_cpp.llama_vocab_bos(vocab)),
        eos_text=_token_text(vocab, llama_cpp.llama_vocab_eos(vocab)),
        add_bos=bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
        load_seconds=time.perf_counter() - started,
        kv_bytes_per_token=_kv_bytes_per_token(model.model),
    )
