"""`Engine`: the one thread that owns the llama.cpp context, and its queue of turns.

Every call into the context runs on a single-thread executor, so turns run one at a time in the order
they were submitted (FIFO) and the event loop never blocks on the model. The conversation being
served lives in sequence 0. Before a turn whose prompt shares more with a parked state than with the
live sequence, the live one is parked (`llama_state_seq_get_data`, just this sequence's KV) and the
parked one restored; a turn evaluates only the tokens past the longest shared prefix, and reports
exactly that prefix as cached.
"""

from __future__ import annotations

import asyncio
import codecs
import ctypes
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp.llama_grammar import LlamaGrammar

from .kv_store import KVStore, ParkedState, common_prefix
from .loader import LoadedModel, load_model

TOP_K = 40
MIN_P = 0.05


class ContextOverflow(Exception):
    """The prompt does not fit the context window."""


@dataclass(frozen=True, slots=True)
class Sampling:
    temperature: float
    top_p: float
    max_tokens: int | None
    grammar: str | None = None


@dataclass(slots=True)
class TurnJob:
    """One turn for the engine thread. `emit` must be safe to call from that thread."""

    prompt: list[int]
    sampling: Sampling
    emit: Callable[[tuple[str, Any]], None]
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, slots=True)
class TurnResult:
    reason: str  # stop | length | cancelled
    generated: list[int]
    text: str
    cached_tokens: int
    model_seconds: float


class Engine:
    def __init__(self, path: Path, n_ctx: int, n_threads: int | None, kv_budget_bytes: int) -> None:
        self.path = path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.store = KVStore(kv_budget_bytes)
        self.model: LoadedModel | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tether-llama")
        self._active: list[int] = []  # the tokens sequence 0 holds
        self._current: TurnJob | None = None
        self._closing = False
        self.counters = {"turns": 0, "parks": 0, "restores": 0, "prompt_tokens": 0, "cached_tokens": 0,
                         "generated_tokens": 0, "cancelled": 0}

    # -- life cycle (event loop side) ---------------------------------------------------------
    async def start(self) -> LoadedModel:
        loop = asyncio.get_running_loop()
        self.model = await loop.run_in_executor(self._executor, load_model, self.path, self.n_ctx, self.n_threads)
        return self.model

    async def aclose(self) -> None:
        """Stop the running turn at its next token, drop queued ones, then free the model."""
        self._closing = True
        current = self._current
        if current is not None:
            current.cancelled.set()
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)
        model, self.model = self.model, None
        if model is not None:
            model.llama.close()

    def submit(self, job: TurnJob) -> Future[None]:
        return self._executor.submit(self._run_job, job)

    def forget(self, tokens: Sequence[int]) -> None:
        """Drop the parked state of exactly `tokens` (a released conversation), on the engine thread."""
        try:
            self._executor.submit(self.store.discard_exact, list(tokens))
        except RuntimeError:
            pass  # shut down: nothing left to free

    # -- the engine thread --------------------------------------------------------------------
    def _run_job(self, job: TurnJob) -> None:
        if self._closing:
            job.cancelled.set()
        self._current = job
        try:
            result = self._run_turn(job)
            self.counters["generated_tokens"] += len(result.generated)
            self.counters["cancelled"] += result.reason == "cancelled"
            job.emit(("done", result))
        except ContextOverflow as exc:
            job.emit(("error", ("context_length_exceeded", str(exc))))
        except Exception as exc:  # the context may be half-written: start it over
            self._reset()
            job.emit(("error", ("server_error", f"llama.cpp failed: {type(exc).__name__}: {exc}")))
        finally:
            self._current = None

    def _run_turn(self, job: TurnJob) -> TurnResult:
        if job.cancelled.is_set():
            return TurnResult("cancelled", [], "", 0, 0.0)
        model = self.model
        if model is None:
            raise RuntimeError("the model is not loaded")
        llama = model.llama
        prompt = job.prompt
        if not prompt:
            raise ContextOverflow("The prompt is empty.")
        if len(prompt) >= self.n_ctx:
            raise ContextOverflow(
                f"The prompt has {len(prompt)} tokens; the context window is {self.n_ctx} tokens (--ctx)."
            )
        started = time.perf_counter()
        reused = self._prepare_prefix(prompt)
        self.counters["turns"] += 1
        self.counters["prompt_tokens"] += len(prompt)
        self.counters["cached_tokens"] += reused
        self._truncate(reused)
        batch = llama.n_batch
        for start in range(reused, len(prompt), batch):
            if job.cancelled.is_set():
                return TurnResult("cancelled", [], "", reused, time.perf_counter() - started)
            chunk = prompt[start : start + batch]
            llama.eval(chunk)
            self._active.extend(chunk)
        reason, generated, text = self._sample(job, len(prompt))
        return TurnResult(reason, generated, text, reused, time.perf_counter() - started)

    def _sample(self, job: TurnJob, prompt_len: int) -> tuple[str, list[int], str]:
        assert self.model is not None
        llama = self.model.llama
        settings = job.sampling
        grammar = LlamaGrammar.from_string(settings.grammar, verbose=False) if settings.grammar else None
        sampler = llama._init_sampler(
            top_k=TOP_K, top_p=settings.top_p, min_p=MIN_P, temp=settings.temperature, grammar=grammar
        )
        vocab = llama._model.vocab
        limit = self.n_ctx - prompt_len
        if settings.max_tokens is not None:
            limit = min(limit, settings.max_tokens)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        generated: list[int] = []
        pieces: list[str] = []
        reason = "length"
        try:
            while len(generated) < limit:
                if job.cancelled.is_set():
                    reason = "cancelled"
                    break
                token = sampler.sample(llama._ctx, -1)
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    reason = "stop"
                    break
                generated.append(token)
                piece = decoder.decode(llama.detokenize([token], special=True))
                if piece:
                    pieces.append(piece)
                    job.emit(("text", piece))
                if len(generated) < limit:  # the last token of a truncated turn needs no logits
                    llama.eval([token])
                    self._active.append(token)
        finally:
            sampler.close()
        tail = decoder.decode(b"", final=True)
        if tail:
            pieces.append(tail)
            job.emit(("text", tail))
        return reason, generated, "".join(pieces)

    def _prepare_prefix(self, prompt: list[int]) -> int:
        """Make sequence 0 hold the best available prefix of `prompt`; returns how many tokens to keep.

        At least the last prompt token is always evaluated again, since sampling needs fresh logits.
        """
        live = common_prefix(self._active, prompt)
        key, parked = self.store.best(prompt)
        if key is not None and parked > live:
            self._park_active()
            entry = self.store.get(key)
            if parked == len(entry.tokens):
                self.store.pop(key)  # the live sequence continues it; parked again when switched away
            if self._restore(entry):
                live = parked
            else:
                live = 0
        elif live < len(self._active):
            self._park_active()
        return min(live, len(prompt) - 1)

    def _truncate(self, keep: int) -> None:
        assert self.model is not None
        llama = self.model.llama
        del self._active[keep:]
        llama.n_tokens = keep
        llama._ctx.kv_cache_seq_rm(0, keep, -1)

    def _park_active(self) -> None:
        assert self.model is not None
        if not self._active or self.store.covers(self._active):
            return
        ctx = self.model.llama._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        if not self.store.fits(size):
            self.store.evictions += 1
            return
        data = (ctypes.c_uint8 * size)()
        if llama_cpp.llama_state_seq_get_data(ctx, data, size, 0) != size:
            return
        self.store.put(ParkedState(tuple(self._active), data))
        self.counters["parks"] += 1

    def _restore(self, entry: ParkedState) -> bool:
        assert self.model is not None
        llama = self.model.llama
        llama._ctx.kv_cache_seq_rm(0, 0, -1)
        if llama_cpp.llama_state_seq_set_data(llama._ctx.ctx, entry.data, entry.nbytes, 0) == 0:
            self._reset()
            return False
        n = len(entry.tokens)
        llama.input_ids[:n] = entry.tokens
        llama.n_tokens = n
        self._active = list(entry.tokens)
        self.counters["restores"] += 1
        return True

    def _reset(self) -> None:
        if self.model is None:
            return
        llama = self.model.llama
        llama._ctx.kv_cache_seq_rm(0, 0, -1)
        llama.n_tokens = 0
        self._active = []

    def stats(self) -> dict[str, Any]:
        return {**self.counters, "active_tokens": len(self._active), "kv_store": self.store.stats()}
