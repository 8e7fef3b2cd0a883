"""`Scheduler`: continuous batching on the engine thread.

Turns arrive from the event loop (`submit`) and wait for a slot. Each step is one `llama_decode` batch
holding the next token of every turn that is decoding, plus prompt tokens of the turns that are
prefilling (chunked prefill, so a long prompt never stalls them for more than a step, and the decoding
turns share one pass over the weights). Prompt tokens go to the turn with the fewest left first, so a
short request that arrives during long work gets its first token after one step, and a long prompt is
left out at most `STARVE_SECONDS` of engine time in favour of other long ones.

A long prompt's chunk is sized by time: as many tokens as keep the step within `STEP_BUDGET` seconds
by the engine's fitted step cost (step_cost.py), at least `MIN_CHUNK`, at most `PREFILL_CHUNK` while
others decode. A token's cost grows with its depth, so a chunk of a fixed count took 1 s at the start
of a prompt and 3.4 s at 8k on the test machine, and a continuation arriving meanwhile waited for it
(BENCHMARKS.md section 4). A short prompt (a continuation's new tokens) is never split, since that
would only delay its first token; a second one waits for the next step if both would overrun it.

When every slot serves a turn and more wait, the turn that has held its slot longest (at least
`SLICE_STEPS` steps) is parked exactly (`Engine.snapshot`, outside the store's budget, so nothing
evicts it) and goes to the back of the queue; it keeps its sampler and its sampled, not yet evaluated
token, so it resumes exactly where it stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import llama_cpp

from .batch import DecodeBatch
from .jobs import ContextOverflow, TurnJob, TurnResult
from .loader import N_BATCH
from .step_cost import attended_positions
from .turn import Turn

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("tether.llamacpp")
PREFILL_CHUNK = 256  # the most prompt tokens per step while other turns decode (measured: see BENCHMARKS.md)
STEP_BUDGET = 0.25  # seconds a step with a long prompt's chunk should take (BENCHMARKS.md section 4)
MIN_CHUNK = 32  # the fewest tokens of a long prompt that go in a step at all: below it a token costs more
STARVE_SECONDS = 10.0  # a long prompt left out this long (engine time) goes before the other long ones
SLICE_STEPS = 16  # steps a turn keeps its slot while other turns wait for one
MIN_COPY_TOKENS = 32  # a shorter shared prefix is evaluated again rather than copied between sequences


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
        # engine thread only:
        self._waiting: deque[Turn] = deque()
        self._active: list[Turn] = []
        self._step = 0
        self._clock = 0.0  # seconds of steps run: the engine's own time, which its waits are measured in
        self._batch: DecodeBatch | None = None
        self._threads = engine.shape.threads  # what the context was made with; the governor may change it

    @property
    def active(self) -> int:
        return len(self._open)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

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
        """Run `chore` on the engine thread between steps."""
        with self._lock:
            if not self._closed:
                self._chores.append(chore)
                self._kick()

    def close(self) -> None:
        """Take no more turns; every open one stops at its next step."""
        with self._lock:
            self._closed = True
            for job in self._open.values():
                job.cancelled.set()

    def free(self) -> None:
        """After the engine thread has stopped: the batch buffer goes."""
        if self._batch is not None:
            self._batch.close()
            self._batch = None

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
                    if not chores and not self._inbox and not self._waiting and not self._active:
                        self._pumping = False
                        return
                self._admit()
                self._settle_cancelled()  # first, so a chore for a cancelled turn's conversation finds it idle
                for chore in chores:
                    try:
                        chore()
                    except Exception:
                        log.exception("engine chore failed")
                self._place_waiting()
                if self._active:
                    self._run_step()
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
        self._waiting.extend(Turn(job) for job in fresh)

    def _settle_cancelled(self) -> None:
        for turn in [t for t in self._active if t.job.cancelled.is_set()]:
            self._finish(turn, "cancelled")

    # -- slots ---------------------------------------------------------------------------------
    def _place_waiting(self) -> None:
        """Give free slots to waiting turns, first come first served; under slot pressure, rotate."""
        for attempt in range(2):
            while self._waiting:
                turn = self._waiting[0]
                if turn.job.cancelled.is_set():
                    self._waiting.popleft()
                    self._finish(turn, "cancelled")
                    continue
                try:
                    placed = self._place(turn)
                except ContextOverflow as exc:
                    self._waiting.popleft()
                    self._fail(turn, "context_length_exceeded", str(exc))
                    continue
                except Exception as exc:
                    self._waiting.popleft()
                    self._drop_slot(turn)
                    self._fail(turn, "server_error", f"llama.cpp failed: {type(exc).__name__}: {exc}")
                    continue
                if not placed:
                    break
                self._waiting.popleft()
                self._active.append(turn)
            if attempt or not self._waiting or not self._preempt():
                return

    def _place(self, turn: Turn) -> bool:
        """Give `turn` a slot holding as much of its prompt as the engine has; False if none is free."""
        if turn.begun:
            return self._resume(turn)
        engine = self.engine
        prompt = turn.job.prompt
        engine.check_prompt(prompt)
        source, shared = engine.slots.best(prompt)
        key, parked = engine.store.best(prompt)
        if source is not None and source.idle and shared == len(source.tokens) and shared >= parked:
            slot, keep = source, shared  # its own continuation: in place, nothing to move
        else:
            free = engine.slots.victim(keep=source)
            if free is None and source is not None and source.idle:
                free = source  # the only idle slot is the one to start from
            if free is None:
                return False
            slot = free
            if key is not None and parked > shared:
                entry = engine.store.get(key)  # before the eviction below can push it out of the store
                if parked == len(entry.tokens):
                    engine.store.pop(key)  # resident again; parked again when its slot is given up
                engine.evict(slot)
                keep = parked if engine.restore(slot, entry) else 0
            elif slot is source:
                engine.park(slot)  # its own conversation goes on in the store; its prefix serves this one
                keep = shared
            else:
                engine.evict(slot)
                keep = 0
                if source is not None and shared >= MIN_COPY_TOKENS:
                    engine.copy(source, slot, shared)
                    keep = shared
        keep = min(keep, len(prompt) - 1)  # the last prompt token is evaluated again: sampling needs logits
        engine.truncate(slot, keep)
        turn.begin(engine, keep)
        self._bind(turn, slot)
        return True

    def _resume(self, turn: Turn) -> bool:
        """A parked turn back into a slot, restored exactly (or evaluated again if its state is lost)."""
        engine = self.engine
        slot = engine.slots.victim()
        if slot is None:
            return False
        engine.evict(slot)
        state, turn.parked = turn.parked, None
        if state is None or not engine.restore(slot, state):
            turn.pending = turn.job.prompt + turn.generated
        self._bind(turn, slot)
        return True

    def _bind(self, turn: Turn, slot: Any) -> None:
        slot.turn = turn
        turn.slot = slot
        turn.since = self._step
        turn.fed_at = self._clock
        self.engine.slots.touch(slot)

    def _preempt(self) -> bool:
        """Park the turn that has held its slot longest, if it had its `SLICE_STEPS`; True if one was."""
        ready = [t for t in self._active if self._step - t.since >= SLICE_STEPS]
        if not ready:
            return False
        turn = min(ready, key=lambda t: t.since)
        slot = turn.slot
        assert slot is not None
        engine = self.engine
        started = time.perf_counter()
        try:
            turn.parked = engine.snapshot(slot)
        except Exception:
            log.exception("could not park a turn; it will be evaluated again")
            turn.parked = None
        if turn.parked is None:
            turn.pending = turn.job.prompt + turn.generated
        engine.clear(slot)
        turn.seconds += time.perf_counter() - started
        slot.turn, turn.slot = None, None
        self._active.remove(turn)
        self._waiting.append(turn)
        engine.counters["preemptions"] += 1
        return True

    # -- one step ------------------------------------------------------------------------------
    def _run_step(self) -> None:
        started = time.perf_counter()
        try:
            self._step_once()
        finally:
            elapsed = time.perf_counter() - started
            self._clock += elapsed
            self.engine.counters["step_seconds"] += elapsed

    def _step_once(self) -> None:
        engine = self.engine
        if self._batch is None:
            self._batch = DecodeBatch(N_BATCH)
        batch = self._batch
        batch.clear()
        turns = sorted(self._active, key=lambda t: t.slot.seq if t.slot is not None else 0)
        chunks = self._prefill_chunks(turns, batch.capacity)
        fed: list[tuple[Turn, int, int | None]] = []
        attended = 0
        for turn in turns:
            slot = turn.slot
            assert slot is not None
            n: int = 1 if len(turn.pending) == 1 else chunks.get(id(turn), 0)
            if n == 0:
                continue
            wants = n == len(turn.pending) and not turn.done_after_eval
            index = batch.add(turn.pending[:n], len(slot.tokens), slot.seq, wants)
            attended += attended_positions(len(slot.tokens), n)
            fed.append((turn, n, index if wants else None))
        self._step += 1
        threads = engine.governor.threads_for(batch.size)
        if threads != self._threads:
            llama_cpp.llama_set_n_threads(engine.loaded.ctx, threads, threads)
            self._threads = threads
        started = time.perf_counter()
        status = batch.decode(engine.loaded.ctx)
        elapsed = time.perf_counter() - started
        engine.governor.record(threads, batch.size, elapsed)
        if status != 0:
            for turn, _, _ in fed:  # its slot may be half-written
                self._drop_slot(turn)
                self._fail(turn, "server_error", f"llama.cpp could not evaluate the batch (llama_decode: {status}).")
            return
        for slot in engine.slots.slots:
            slot.copy_pending = False
        engine.step_cost.record(batch.size, attended, elapsed)  # a failed decode says nothing of the cost
        engine.counters["steps"] += 1
        engine.counters["batch_tokens"] += batch.size
        engine.counters["decode_seconds"] += elapsed
        for turn, count, logits_at in fed:
            self._after_eval(turn, count, logits_at, elapsed * count / batch.size)

    def _prefill_chunks(self, turns: list[Turn], capacity: int) -> dict[int, int]:
        """How many prompt tokens each prefilling turn evaluates this step: at most `PREFILL_CHUNK` in all
        while other turns decode (each step is a token for them), the whole batch when none does, and a
        long prompt only what keeps the step within `STEP_BUDGET` (see the module's docstring). The turn
        with the fewest prompt tokens left goes first (a continuation's few new tokens before a long
        first prompt: the least total wait for first tokens), except that a long one which got nothing
        for `STARVE_SECONDS` goes before the other long ones (`_prefill_rank`). A step that the short
        prompts already take past the budget gets no long prompt's tokens: the decode steps that follow
        a continuation carry them."""
        decoding = [t for t in turns if len(t.pending) == 1]
        room = min(PREFILL_CHUNK if decoding else capacity, capacity - len(decoding))
        prefilling = [t for t in turns if t.prefilling]
        chunks: dict[int, int] = {}
        if not prefilling or room <= 0:
            return chunks
        ranks = {id(t): self._prefill_rank(t) for t in prefilling}
        prefilling.sort(key=lambda t: (ranks[id(t)], len(t.pending), t.since))
        cost = self.engine.step_cost
        tokens = len(decoding)
        attended = sum(len(t.slot.tokens) for t in decoding if t.slot is not None)
        for turn in prefilling:
            assert turn.slot is not None
            start = len(turn.slot.tokens)
            n = min(len(turn.pending), room)
            fits = cost.tokens_within(STEP_BUDGET, tokens, attended, start, n)
            if fits is not None and fits < n:
                if ranks[id(turn)] == 0:
                    n = 0 if chunks else n  # whole, and first: splitting it only delays its first token
                else:
                    n = min(n, max(fits, 0 if chunks else MIN_CHUNK))  # a step with no prompt work gets some
            if n == 0:
                continue
            chunks[id(turn)] = n
            turn.fed_at = self._clock
            room -= n
            tokens += n
            attended += attended_positions(start, n)
            if room == 0:
                break
        return chunks

    def _prefill_rank(self, turn: Turn) -> int:
        """0: a prompt that fits in one chunk (a continuation's new tokens: its first token comes next
        step whatever else waits); 1: a long prompt left out `STARVE_SECONDS`; 2: other long ones.
        A starved long prompt goes before other long ones, never before a short one: with 8 agents the
        starvation rule kept putting first prompts' chunks ahead of continuations, which set their
        later-turn TTFT tail (BENCHMARKS.md section 4)."""
        if len(turn.pending) <= PREFILL_CHUNK:
            return 0
        return 1 if self._clock - turn.fed_at >= STARVE_SECONDS else 2

    def _after_eval(self, turn: Turn, n: int, index: int | None, share: float) -> None:
        slot = turn.slot
        assert slot is not None
        turn.seconds += share
        slot.tokens.extend(turn.pending[:n])
        del turn.pending[:n]
        if turn.pending:
            return
        started = time.perf_counter()
        try:
            reason = "length" if index is None else turn.take_sample(self.engine, index)
        except Exception as exc:  # its listener failed, or the sampler did
            self._fail(turn, "server_error", f"The turn failed: {type(exc).__name__}: {exc}")
            return
        finally:
            turn.seconds += time.perf_counter() - started
        if reason is not None:
            self._finish(turn, reason)

    # -- endings -------------------------------------------------------------------------------
    def _leave(self, turn: Turn) -> None:
        if turn in self._active:
            self._active.remove(turn)
        slot, turn.slot = turn.slot, None
        if slot is not None:
            slot.turn = None
            self.engine.slots.touch(slot)  # idle now, holding this conversation for its next turn

    def _drop_slot(self, turn: Turn) -> None:
        """The turn's slot may be half-written: empty it."""
        if turn.slot is not None:
            try:
                self.engine.clear(turn.slot)
            except Exception:
                log.exception("could not clear a slot")

    def _finish(self, turn: Turn, reason: str) -> None:
        self._leave(turn)
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
        self._leave(turn)
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
        self._admit()
        turns = [*self._active, *self._waiting]
        self._waiting.clear()
        for turn in turns:
            self._drop_slot(turn)
            self._fail(turn, "server_error", "The engine scheduler failed.")

