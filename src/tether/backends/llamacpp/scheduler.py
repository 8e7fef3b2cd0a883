"""`Scheduler`: the engine thread's round robin over active turns.

Turns arrive from the event loop (`submit`) and run on the engine's single thread, one time slice at
a time: a prefill chunk of up to `n_batch` prompt tokens (the last one with the turn's first token), or
up to `SLICE_TOKENS` generated tokens.
After a slice the turn goes to the back of the queue, so a short request that arrives during a long
generation waits for at most one slice of each active turn, not for the whole of them.

A turn that must yield sequence 0 to another is parked exactly (`Engine.snapshot`, outside the
store's LRU budget, so nothing can evict it while the turn is active) and restored when its next slice
comes; it keeps its sampler (grammar and RNG state) and its undecoded bytes, so it resumes exactly
where it stopped. A slice ends after a token is sampled but before it is evaluated, so a resumed turn
needs no saved logits: its first step evaluates that token. With one active turn nothing is parked.
"""

from __future__ import annotations

import codecs
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import llama_cpp
from llama_cpp.llama_grammar import LlamaGrammar

from .jobs import ContextOverflow, TurnJob, TurnResult
from .kv_store import ParkedState

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("tether.llamacpp")
SLICE_TOKENS = 16  # generated tokens per slice when other turns wait
TOP_K = 40
MIN_P = 0.05


class Turn:
    """One job's progress between slices."""

    def __init__(self, job: TurnJob) -> None:
        self.job = job
        self.begun = False
        self.pending: list[int] = []  # tokens to evaluate before the next sample
        self.generated: list[int] = []
        self.pieces: list[str] = []
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.sampler: Any = None
        self.limit = 0
        self.reused = 0
        self.seconds = 0.0
        self.parked: ParkedState | None = None
        self.spare: Any = None  # the buffer of its last parked state, reused by its next one

    def begin(self, engine: Engine) -> None:
        prompt, settings = self.job.prompt, self.job.sampling
        engine.check_prompt(prompt)
        self.begun = True
        self.reused = engine.prepare_prefix(prompt)
        counters = engine.counters
        counters["turns"] += 1
        counters["prompt_tokens"] += len(prompt)
        counters["cached_tokens"] += self.reused
        self.pending = prompt[self.reused :]
        self.limit = engine.n_ctx - len(prompt)
        if settings.max_tokens is not None:
            self.limit = min(self.limit, settings.max_tokens)
        llama = engine.llama
        grammar = LlamaGrammar.from_string(settings.grammar, verbose=False) if settings.grammar else None
        self.sampler = llama._init_sampler(
            top_k=TOP_K, top_p=settings.top_p, min_p=MIN_P, temp=settings.temperature, grammar=grammar
        )

    def run_slice(self, engine: Engine) -> str | None:
        """Advance by one slice; returns the finish reason (stop | length | cancelled), or None to go on."""
        llama = engine.llama
        for _ in range(SLICE_TOKENS):
            if self.job.cancelled.is_set():
                return "cancelled"
            if self.pending:
                chunk, self.pending = self.pending[: llama.n_batch], self.pending[llama.n_batch :]
                engine.eval(chunk)
                if self.pending:
                    return None  # a prefill chunk is a slice's worth
            if len(self.generated) >= self.limit:
                return "length"
            token = self.sampler.sample(llama._ctx, -1)
            if llama_cpp.llama_vocab_is_eog(llama._model.vocab, token):
                return "stop"
            self.generated.append(token)
            self._emit_text(self.decoder.decode(llama.detokenize([token], special=True)))
            if len(self.generated) >= self.limit:
                return "length"  # the last token of a truncated turn needs no logits
            self.pending = [token]
            if len(self.generated) == 1:
                return None  # the first token ends the prefill's slice: every waiting turn sees its own soon
        return None

    def result(self, reason: str) -> TurnResult:
        self._emit_text(self.decoder.decode(b"", final=True))
        return TurnResult(reason, self.generated, "".join(self.pieces), self.reused, self.seconds)

    def close(self) -> None:
        self.parked = self.spare = None
        if self.sampler is not None:
            self.sampler.close()
            self.sampler = None

    def _emit_text(self, piece: str) -> None:
        if piece:
            self.pieces.append(piece)
            self.job.emit(("text", piece))


class Scheduler:
    def __init__(self, engine: Engine, executor: Executor) -> None:
        self.engine = engine
        self._executor = executor
        self._lock = threading.Lock()
        self._inbox: deque[TurnJob] = deque()
        self._chores: deque[Callable[[], object]] = deque()
        self._open: dict[int, TurnJob] = {}
        self._pumping = False
        self._closed = False
        self._turns: deque[Turn] = deque()  # engine thread only, like `_live`
        self._live: Turn | None = None  # the unfinished turn whose state sequence 0 holds

    @property
    def active(self) -> int:
        return len(self._open)

    # -- any thread ----------------------------------------------------------------------------
    def submit(self, job: TurnJob) -> None:
        with self._lock:
            if not self._closed:
                self._inbox.append(job)
                self._open[id(job)] = job
                self._kick()
                return
        job.cancelled.set()
        job.emit(("done", TurnResult("cancelled", [], "", 0, 0.0)))

    def call(self, chore: Callable[[], object]) -> None:
        """Run `chore` on the engine thread between slices."""
        with self._lock:
            if not self._closed:
                self._chores.append(chore)
                self._kick()

    def close(self) -> None:
        """Take no more turns; every open one stops at its next token."""
        with self._lock:
            self._closed = True
            for job in self._open.values():
                job.cancelled.set()

    def _kick(self) -> None:
        if not self._pumping:
            self._executor.submit(self._pump)
            self._pumping = True

    # -- the engine thread ---------------------------------------------------------------------
    def _pump(self) -> None:
        try:
            while True:
                with self._lock:
                    chores = list(self._chores)
                    self._chores.clear()
                    if not chores and not self._inbox and not self._turns:
                        self._pumping = False
                        return
                for chore in chores:
                    try:
                        chore()
                    except Exception:
                        log.exception("engine chore failed")
                self._admit()
                if self._turns:
                    self._round()
        except BaseException:
            log.exception("the engine scheduler failed")
            with self._lock:
                self._pumping = False
            self._fail_all()
            raise

    def _admit(self) -> None:
        with self._lock:
            fresh = list(self._inbox)
            self._inbox.clear()
        self._turns.extend(Turn(job) for job in fresh)

    def _round(self) -> None:
        turn = self._turns.popleft()
        engine = self.engine
        if turn.job.cancelled.is_set() and self._live is not turn:
            self._finish(turn, "cancelled")  # never restored: its parked state is just dropped
            return
        was_live = self._park_live(turn)
        started = time.perf_counter()
        try:
            if not was_live:
                self._enter(turn)
            engine.counters["slices"] += 1
            reason = turn.run_slice(engine)
        except ContextOverflow as exc:
            self._fail(turn, "context_length_exceeded", str(exc))
            return
        except Exception as exc:  # the context may be half-written: start it over; parked turns are intact
            engine.reset()
            self._fail(turn, "server_error", f"llama.cpp failed: {type(exc).__name__}: {exc}")
            return
        finally:
            turn.seconds += time.perf_counter() - started
        if reason is not None:
            self._finish(turn, reason)
        else:
            self._admit()  # turns that arrived during this slice go before this one's next
            self._turns.append(turn)

    def _park_live(self, turn: Turn) -> bool:
        """Before `turn`'s slice: park the other unfinished turn that sequence 0 holds, if any.
        Returns whether sequence 0 holds `turn` already (then nothing is parked)."""
        live, self._live = self._live, turn
        if live is turn:
            return True
        if live is None:
            return False
        started = time.perf_counter()
        try:
            live.parked, live.spare = self.engine.snapshot(live.spare), None  # None: `_enter` replays it
        except Exception:
            log.exception("could not park a turn; it will be evaluated again")
            live.parked = None
        live.seconds += time.perf_counter() - started
        return False

    def _enter(self, turn: Turn) -> None:
        """Make sequence 0 hold `turn`'s state: a first slice begins it, a later one restores it exactly."""
        engine = self.engine
        if not turn.begun:
            turn.begin(engine)
            return
        state, turn.parked = turn.parked, None
        if state is not None and engine.resume(state):
            turn.spare = state.data
        else:  # lost: evaluate everything it holds again
            engine.park_active()
            engine.reset()
            turn.pending = turn.job.prompt + turn.generated

    def _finish(self, turn: Turn, reason: str) -> None:
        if self._live is turn:
            self._live = None  # sequence 0 now holds a finished conversation, parked like any other
        try:
            result = turn.result(reason)
        except Exception as exc:  # its listener failed on the last piece of text
            self._fail(turn, "server_error", f"The turn could not be finished: {type(exc).__name__}: {exc}")
            return
        turn.close()
        counters = self.engine.counters
        counters["generated_tokens"] += len(result.generated)
        counters["cancelled"] += reason == "cancelled"
        self._done(turn.job, ("done", result))

    def _fail(self, turn: Turn, code: str, message: str) -> None:
        if self._live is turn:
            self._live = None
        turn.close()
        self._done(turn.job, ("error", (code, message)))

    def _done(self, job: TurnJob, message: tuple[str, Any]) -> None:
        with self._lock:
            self._open.pop(id(job), None)
        try:
            job.emit(message)
        except Exception:
            log.exception("a turn's listener failed")

    def _fail_all(self) -> None:
        self._live = None
        turns, self._turns = list(self._turns), deque()
        self._admit()
        turns += list(self._turns)
        self._turns.clear()
        for turn in turns:
            self._fail(turn, "server_error", "The engine scheduler failed.")
