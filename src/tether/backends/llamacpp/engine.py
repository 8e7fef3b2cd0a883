"""`Engine`: the one thread that owns the llama.cpp context, and the KV state of its conversations.

Every call into the context runs on a single-thread executor, so the event loop never blocks on the
model. Turns share that thread fairly: the `Scheduler` gives each active turn a time slice in turn
(round robin; see scheduler.py). The conversation being served lives in sequence 0. Before a turn
whose prompt shares more with a parked state than with the live sequence, the live one is parked
(`llama_state_seq_get_data`, just this sequence's KV) in the `KVStore` and the parked one restored;
a turn evaluates only the tokens past the longest shared prefix, and reports exactly that prefix as
cached. An unfinished turn that yields the context to another is parked exactly, outside the store,
and restored when its next slice comes.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp import Llama

from .jobs import ContextOverflow, Sampling, TurnJob, TurnResult
from .kv_store import KVStore, ParkedState, common_prefix
from .loader import LoadedModel, load_model
from .scheduler import Scheduler

__all__ = ["ContextOverflow", "Engine", "Sampling", "TurnJob", "TurnResult"]


class Engine:
    def __init__(self, path: Path, n_ctx: int, n_threads: int | None, kv_budget_bytes: int) -> None:
        self.path = path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.store = KVStore(kv_budget_bytes)
        self.model: LoadedModel | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tether-llama")
        self._active: list[int] = []  # the tokens sequence 0 holds
        self._active_saved = False  # sequence 0 is also parked as an unfinished turn's own state
        self.counters = {"turns": 0, "parks": 0, "restores": 0, "prompt_tokens": 0, "cached_tokens": 0,
                         "generated_tokens": 0, "cancelled": 0, "slices": 0, "switches": 0}
        self.scheduler = Scheduler(self, self._executor)

    # -- life cycle (event loop side) ---------------------------------------------------------
    async def start(self) -> LoadedModel:
        loop = asyncio.get_running_loop()
        self.model = await loop.run_in_executor(self._executor, load_model, self.path, self.n_ctx, self.n_threads)
        return self.model

    async def aclose(self) -> None:
        """Stop every turn at its next token (each reports `cancelled`), then free the model."""
        self.scheduler.close()
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)
        model, self.model = self.model, None
        if model is not None:
            model.llama.close()

    def submit(self, job: TurnJob) -> None:
        """Queue a turn; it gets its first slice after the turns already active have had theirs."""
        self.scheduler.submit(job)

    def forget(self, tokens: Sequence[int]) -> None:
        """Drop the parked state of exactly `tokens` (a released conversation), on the engine thread."""
        tokens = list(tokens)
        self.scheduler.call(lambda: self.store.discard_exact(tokens))

    def stats(self) -> dict[str, Any]:
        return {**self.counters, "active_tokens": len(self._active), "active_turns": self.scheduler.active,
                "kv_store": self.store.stats()}

    # -- sequence 0, on the engine thread -----------------------------------------------------
    @property
    def llama(self) -> Llama:
        if self.model is None:
            raise RuntimeError("the model is not loaded")
        return self.model.llama

    def check_prompt(self, prompt: Sequence[int]) -> None:
        if not prompt:
            raise ContextOverflow("The prompt is empty.")
        if len(prompt) >= self.n_ctx:
            raise ContextOverflow(
                f"The prompt has {len(prompt)} tokens; the context window is {self.n_ctx} tokens (--ctx)."
            )

    def prepare_prefix(self, prompt: list[int]) -> int:
        """Make sequence 0 hold the best available prefix of `prompt` and nothing past it; returns its length.

        At least the last prompt token is always evaluated again, since sampling needs fresh logits.
        """
        live = common_prefix(self._active, prompt)
        key, parked = self.store.best(prompt)
        if key is not None and parked > live:
            self.park_active()
            entry = self.store.get(key)
            if parked == len(entry.tokens):
                self.store.pop(key)  # the live sequence continues it; parked again when switched away
            live = parked if self._restore(entry) else 0
        elif live < len(self._active):
            self.park_active()
        keep = min(live, len(prompt) - 1)
        self._truncate(keep)
        return keep

    def eval(self, tokens: list[int]) -> None:
        self.llama.eval(tokens)
        self._active.extend(tokens)

    def snapshot(self, spare: Any = None) -> ParkedState | None:
        """An exact copy of sequence 0 for the unfinished turn it belongs to (kept outside the store),
        written into `spare` (that turn's buffer from its last restore) when it is large enough."""
        state = self._copy_active(spare, headroom=True)
        if state is not None:
            self._active_saved = True
            self.counters["switches"] += 1
        return state

    def resume(self, state: ParkedState) -> bool:
        """Give sequence 0 back to a turn `snapshot` parked; False (and sequence 0 empty) if it failed."""
        self.park_active()
        return self._restore(state)

    def park_active(self) -> None:
        """Keep a finished conversation's state in the store before sequence 0 is reused."""
        if not self._active or self._active_saved or self.store.covers(self._active):
            return
        state = self._copy_active()
        if state is None:
            return
        if not self.store.fits(state.nbytes):
            self.store.evictions += 1
            return
        self.store.put(state)
        self.counters["parks"] += 1

    def _copy_active(self, spare: Any = None, headroom: bool = False) -> ParkedState | None:
        ctx = self.llama._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        data = spare
        if data is None or ctypes.sizeof(data) < size:  # a new buffer costs more than the copy itself
            data = (ctypes.c_uint8 * (size + size // 4 if headroom else size))()
        if llama_cpp.llama_state_seq_get_data(ctx, data, size, 0) != size:
            return None
        return ParkedState(tuple(self._active), data, size)

    def _truncate(self, keep: int) -> None:
        llama = self.llama
        del self._active[keep:]
        self._active_saved = False
        llama.n_tokens = keep
        llama._ctx.kv_cache_seq_rm(0, keep, -1)

    def _restore(self, entry: ParkedState) -> bool:
        llama = self.llama
        llama._ctx.kv_cache_seq_rm(0, 0, -1)
        if llama_cpp.llama_state_seq_set_data(llama._ctx.ctx, entry.data, entry.nbytes, 0) == 0:
            self.reset()
            return False
        n = len(entry.tokens)
        llama.input_ids[:n] = entry.tokens
        llama.n_tokens = n
        self._active = list(entry.tokens)
        self._active_saved = False
        self.counters["restores"] += 1
        return True

    def reset(self) -> None:
        if self.model is None:
            return
        llama = self.model.llama
        llama._ctx.kv_cache_seq_rm(0, 0, -1)
        llama.n_tokens = 0
        self._active = []
        self._active_saved = False
