"""`Engine`: the one thread that owns the llama.cpp context, its slots, and the parked KV states.

The context has one KV sequence per slot (`--parallel`). Each active turn runs in a slot of its own and
all of them advance together, one `llama_decode` batch per step (see scheduler.py). A finished
conversation stays resident in its slot, so its continuation evaluates only its new tokens; a prompt
that shares a prefix with a resident slot starts from a copy of that slot's cells (`llama_memory_seq_cp`)
made inside the engine. Only when a turn needs a slot and none is idle is one given up: its state is
parked to host memory (`llama_state_seq_get_data`, this sequence's cells only) in the `KVStore`, least
recently used first, and restored from there when a prompt shares more with it than with any slot.
Every call into the context runs on the engine's single-thread executor: the event loop never blocks
on the model.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import llama_cpp

from .jobs import ContextOverflow, Sampling, TurnJob, TurnResult
from .kv_store import KVStore, ParkedState
from .loader import ContextShape, LoadedModel, load_model
from .scheduler import Scheduler
from .slots import Slot, SlotTable
from .step_cost import StepCost
from .threads import ThreadGovernor, available_cores

__all__ = ["ContextOverflow", "Engine", "Sampling", "TurnJob", "TurnResult"]
log = logging.getLogger("tether.llamacpp")
DEFAULT_SLOTS = 4  # measured: see BENCHMARKS.md ("Embedded engine")


class Engine:
    def __init__(
        self,
        path: Path,
        n_ctx: int,
        n_threads: int | None,
        kv_budget_bytes: int,
        slots: int | None = None,
        flash_attn: bool = False,
    ) -> None:
        self.path = path
        self.n_ctx = n_ctx  # one conversation's window: each slot's sequence has this many cells
        # no --threads: every core, one fewer while another process takes one (see threads.py)
        self.governor = ThreadGovernor(n_threads or available_cores(), adaptive=n_threads is None)
        self.shape = ContextShape(max(1, slots or DEFAULT_SLOTS), n_ctx, self.governor.most, flash_attn)
        self.store = KVStore(kv_budget_bytes)
        self.step_cost = StepCost()  # fitted from the steps run: sizes long prompts' chunks by time
        self.slots = SlotTable(self.shape.slots)
        self.model: LoadedModel | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tether-llama")
        self.counters: dict[str, float] = {
            "turns": 0, "prompt_tokens": 0, "cached_tokens": 0, "generated_tokens": 0, "cancelled": 0,
            "steps": 0, "batch_tokens": 0, "copies": 0, "copied_tokens": 0, "parks": 0, "restores": 0,
            "preemptions": 0,
            # where the engine thread's time goes: inside llama_decode, and the whole of each step (with
            # building the batch, sampling and handing out the text)
            "decode_seconds": 0.0, "step_seconds": 0.0,
        }
        self.scheduler = Scheduler(self, self._executor)

    # -- life cycle (event loop side) ---------------------------------------------------------
    async def start(self) -> LoadedModel:
        loop = asyncio.get_running_loop()
        self.model = await loop.run_in_executor(self._executor, load_model, self.path, self.shape)
        return self.model

    async def aclose(self) -> None:
        """Stop every turn at its next token (each reports `cancelled`), then free the model."""
        self.scheduler.close()
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)
        self.scheduler.free()
        model, self.model = self.model, None
        if model is not None:
            model.close()

    def submit(self, job: TurnJob) -> None:
        """Queue a turn; it joins the next step if a slot is free (or can be freed)."""
        self.scheduler.submit(job)

    def forget(self, tokens: Sequence[int]) -> None:
        """A released conversation: drop its parked state, and let its slot go before any other."""
        tokens = list(tokens)

        def chore() -> None:
            self.store.discard_exact(tokens)
            self.slots.release(tokens)

        self.scheduler.call(chore)

    def stats(self) -> dict[str, Any]:
        per_token = self.model.kv_bytes_per_token if self.model is not None else 0
        shape = self.shape
        return {
            **self.counters,
            "active_turns": self.scheduler.active,
            "waiting_turns": self.scheduler.waiting,
            "threads": self.governor.stats(),
            "step_cost": self.step_cost.stats(),
            "slots": {
                "count": shape.slots,
                "busy": self.slots.busy,
                "ctx_per_slot": shape.n_ctx_slot,
                "resident_tokens": self.slots.resident_tokens,
                "kv_bytes": shape.slots * shape.n_ctx_slot * per_token,  # allocated for every slot at start
                "kv_bytes_used": self.slots.resident_tokens * per_token,
            },
            "kv_store": self.store.stats(),
        }

    # -- the context, on the engine thread ------------------------------------------------------
    @property
    def loaded(self) -> LoadedModel:
        if self.model is None:
            raise RuntimeError("the model is not loaded")
        return self.model

    def check_prompt(self, prompt: Sequence[int]) -> None:
        if not prompt:
            raise ContextOverflow("The prompt is empty.")
        if len(prompt) >= self.n_ctx:
            raise ContextOverflow(
                f"The prompt has {len(prompt)} tokens; the context window is {self.n_ctx} tokens (--ctx)."
            )

    @property
    def _memory(self) -> Any:  # llama_memory_t
        return self.loaded.context.memory

    def truncate(self, slot: Slot, keep: int) -> None:
        """Slot `slot` keeps its first `keep` cells."""
        if keep < len(slot.tokens):
            llama_cpp.llama_memory_seq_rm(self._memory, slot.seq, keep, -1)
            del slot.tokens[keep:]

    def clear(self, slot: Slot) -> None:
        llama_cpp.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
        slot.tokens = []

    def copy(self, source: Slot, target: Slot, keep: int) -> None:
        """`target` gets the first `keep` cells of `source`, copied inside the context. Each sequence has
        its own stream, which llama.cpp copies whole (at the start of the next decode); the cells past
        `keep` are then dropped from the target."""
        llama_cpp.llama_memory_seq_cp(self._memory, source.seq, target.seq, -1, -1)
        target.tokens = source.tokens[:keep]
        target.copy_pending = True
        llama_cpp.llama_memory_seq_rm(self._memory, target.seq, keep, -1)
        self.counters["copies"] += 1
        self.counters["copied_tokens"] += keep

    def snapshot(self, slot: Slot) -> ParkedState | None:
        """An exact copy of `slot`'s cells in host memory (None if llama.cpp could not write it)."""
        ctx = self.loaded.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, slot.seq)
        data = (ctypes.c_uint8 * size)()
        if llama_cpp.llama_state_seq_get_data(ctx, data, size, slot.seq) != size:
            return None
        return ParkedState(tuple(slot.tokens), data)

    def restore(self, slot: Slot, state: ParkedState) -> bool:
        """Fill the empty `slot` with a parked state; False (and the slot empty) if llama.cpp refused it."""
        self.clear(slot)
        if slot.copy_pending:  # a copy still to land would overwrite what is written now
            return False
        if llama_cpp.llama_state_seq_set_data(self.loaded.ctx, state.data, state.nbytes, slot.seq) == 0:
            self.clear(slot)
            return False
        slot.tokens = list(state.tokens)
        self.counters["restores"] += 1
        return True

    def park(self, slot: Slot) -> None:
        """Keep an idle slot's conversation in the store (unless released, already covered, or too
        large), before its sequence is given to another."""
        tokens = slot.tokens
        if not tokens or slot.released or slot.copy_pending or self.store.covers(tokens):
            return
        state = self.snapshot(slot)
        if state is None:
            return
        if not self.store.fits(state.nbytes):
            self.store.evictions += 1
            return
        self.store.put(state)
        self.counters["parks"] += 1

    def evict(self, slot: Slot) -> None:
        """Give up an idle slot: park what it holds, then empty it."""
        try:
            self.park(slot)
        except Exception:
            log.exception("could not park a conversation; it will be evaluated again")
        self.clear(slot)
        slot.released = False
