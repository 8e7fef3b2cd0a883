"""The embedded engine in process: turns batched in one decode per step, forks by copying cells between
sequences, parking under slot pressure, and turns that come out exactly as they would alone.

"Alone" means the same turn on an engine in the same state with nothing else running; greedy (or a
fixed seed) must then give the very same tokens, whatever ran beside it, moved it or parked it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from .llamacpp_support import needs_model

pytestmark = pytest.mark.llamacpp

STORY = "Once upon a time, in a kingdom by the sea, there lived an old dragon who guarded a library. " * 2
ROME = "The history of Rome begins with a small village on seven hills beside the river Tiber. " * 2
NUMBERS = "Here is a list of prime numbers, one per line, starting from two and going up: " * 2


class Listener:
    """A job's messages on the event loop; the engine's step count when its first text came."""

    def __init__(self, loop: asyncio.AbstractEventLoop, steps: Callable[[], int]) -> None:
        self.loop = loop
        self.steps = steps
        self.text: list[str] = []
        self.first_text_step: int | None = None
        self.text_steps: list[int] = []
        self.end: asyncio.Future[tuple[str, Any]] = loop.create_future()

    def emit(self, message: tuple[str, Any]) -> None:  # on the engine thread
        if message[0] == "text":
            step = self.steps()
            self.text_steps.append(step)
            if self.first_text_step is None:
                self.first_text_step = step
        self.loop.call_soon_threadsafe(self._take, message)

    def _take(self, message: tuple[str, Any]) -> None:
        if message[0] == "text":
            self.text.append(message[1])
        elif not self.end.done():
            self.end.set_result(message)


class Harness:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.loop = asyncio.get_running_loop()

    def tokens(self, text: str) -> list[int]:
        model = self.engine.loaded
        return list(model.tokenize(text.encode(), add_bos=model.add_bos))

    def more(self, text: str) -> list[int]:
        """Tokens that continue a prompt (no BOS)."""
        return list(self.engine.loaded.tokenize(text.encode(), add_bos=False))

    def submit(self, prompt: list[int], max_tokens: int, temperature: float = 0.0,
               seed: int | None = None) -> Listener:
        from tether.backends.llamacpp.engine import Sampling, TurnJob

        listener = Listener(self.loop, lambda: int(self.engine.counters["steps"]))
        sampling = Sampling(temperature=temperature, top_p=1.0, max_tokens=max_tokens, seed=seed)
        self.engine.submit(TurnJob(prompt, sampling, listener.emit))
        return listener

    async def run(self, prompt: list[int], max_tokens: int, **sampling: Any) -> Any:
        kind, result = await self.submit(prompt, max_tokens, **sampling).end
        assert kind == "done", result
        return result


def _engine(slots: int, budget_mb: int = 64) -> Any:
    needs_model()
    from tether.backends.llamacpp.engine import Engine
    from tether.backends.llamacpp.model_file import default_model_path

    return Engine(default_model_path(), 2048, 2, budget_mb * 1024 * 1024, slots=slots)


@pytest.fixture
async def engines() -> AsyncIterator[Callable[..., Any]]:
    """Started engines, closed at the end of the test."""
    started: list[Any] = []

    async def start(slots: int, budget_mb: int = 64) -> Harness:
        engine = _engine(slots, budget_mb)
        started.append(engine)
        await engine.start()
        return Harness(engine)

    yield start
    for engine in started:
        await engine.aclose()


async def test_turns_decode_together_and_match_alone(engines: Callable[..., Any]) -> None:
    """Three turns submitted at once share each step's batch, and each gives its text alone."""
    prompts = [STORY, ROME, NUMBERS]
    alone = []
    for text in prompts:  # a fresh engine each: the same (empty) state as the batched run starts from
        solo = await engines(slots=3)
        alone.append((await solo.run(solo.tokens(text), 40)).text)
        await solo.engine.aclose()
    together = await engines(slots=3)
    listeners = [together.submit(together.tokens(text), 40) for text in prompts]
    results = [await listener.end for listener in listeners]
    assert [kind for kind, _ in results] == ["done"] * 3
    assert [result.text for _, result in results] == alone
    stats = together.engine.stats()
    # 3 prompts and 3 x 40 tokens in far fewer steps than one turn at a time would take
    assert stats["steps"] < 60 and stats["batch_tokens"] > 2 * stats["steps"]
    assert stats["preemptions"] == 0 and stats["copies"] == 0


async def test_short_turn_gets_its_first_token_in_the_next_step(engines: Callable[..., Any]) -> None:
    """A short turn arriving during a long generation is in the very next batch; and a long prompt's
    chunked prefill does not stop a decoding turn from getting a token every step."""
    h = await engines(slots=3)
    long = h.submit(h.tokens(STORY), 200)
    while not long.text:
        await asyncio.sleep(0.01)
    submitted_at = h.engine.counters["steps"]
    short = h.submit(h.tokens("Name a color."), 8)
    kind, short_result = await short.end
    assert kind == "done" and short_result.generated
    assert short.first_text_step is not None and short.first_text_step - submitted_at <= 2
    assert not long.end.done()  # it went on beside the short one

    prefill_from = h.engine.counters["steps"]
    big = h.submit(h.tokens(ROME * 20), 4)  # about 800 tokens: several chunks
    kind, big_result = await big.end
    assert kind == "done" and big_result.generated
    assert big.first_text_step is not None
    prefill_steps = big.first_text_step - prefill_from
    assert prefill_steps >= 3  # chunked, not one stall
    during = [step for step in long.text_steps if prefill_from < step <= big.first_text_step]
    assert len(during) >= prefill_steps - 1  # the generating turn kept a token per step meanwhile
    await long.end


async def test_fork_starts_from_a_copy_of_the_parents_cells(engines: Callable[..., Any]) -> None:
    """Two continuations of one conversation: the first continues its slot in place, the second starts
    from a copy of the shared cells in another sequence, reports them cached, and answers exactly as
    it does when it continues the conversation in place itself."""
    question_a = "<|im_start|>user\nWhat did the dragon guard?<|im_end|>\n<|im_start|>assistant\n"
    question_b = "<|im_start|>user\nWhere was the kingdom?<|im_end|>\n<|im_start|>assistant\n"

    async def parent(h: Harness) -> list[int]:
        prompt = h.tokens(STORY)
        result = await h.run(prompt, 24)
        return prompt + list(result.generated)

    reference = await engines(slots=3)
    history = await parent(reference)
    in_place = await reference.run(history + reference.more(question_b), 24)
    assert reference.engine.counters["copies"] == 0

    forked = await engines(slots=3)
    history = await parent(forked)
    await forked.run(history + forked.more(question_a), 24)  # the first child: in place
    copy = await forked.run(history + forked.more(question_b), 24)  # the second: a copy
    stats = forked.engine.stats()
    assert stats["copies"] == 1 and stats["copied_tokens"] >= len(history) - 1
    assert copy.cached_tokens >= len(history) - 1
    assert copy.text == in_place.text


async def test_parked_conversation_resumes_exactly(engines: Callable[..., Any]) -> None:
    """Two slots, three conversations: the least recently used one is parked to host memory when the
    third comes, restored for its continuation, reported cached, and continues exactly as if it had
    stayed resident."""
    follow_up = "<|im_start|>user\nGo on.<|im_end|>\n<|im_start|>assistant\n"

    async def scenario(slots: int) -> tuple[Any, Harness, list[int]]:
        h = await engines(slots=slots)
        histories = []
        for text in (STORY, ROME, NUMBERS):
            prompt = h.tokens(text)
            histories.append(prompt + list((await h.run(prompt, 16)).generated))
        continuation = await h.run(histories[0] + h.more(follow_up), 24)
        return continuation, h, histories[0]

    resident, roomy, _ = await scenario(slots=3)
    assert roomy.engine.counters["parks"] == 0 and roomy.engine.counters["restores"] == 0
    resumed, tight, history = await scenario(slots=2)
    stats = tight.engine.stats()
    assert stats["parks"] >= 1 and stats["restores"] >= 1
    assert resumed.cached_tokens >= len(history) - 1
    assert resumed.text == resident.text


async def test_rotated_turns_with_a_seed_match_alone(engines: Callable[..., Any]) -> None:
    """One slot, two sampled (seeded, temperature 0.8) turns at once: they take turns in the slot, each
    parked and restored with its sampler, and each gives the tokens it gives alone."""
    solo = await engines(slots=1)
    alone = [(await solo.run(solo.tokens(text), 48, temperature=0.8, seed=7)).generated for text in (STORY, ROME)]
    await solo.engine.aclose()
    shared = await engines(slots=1)
    first = shared.submit(shared.tokens(STORY), 48, temperature=0.8, seed=7)
    second = shared.submit(shared.tokens(ROME), 48, temperature=0.8, seed=7)
    results = [await first.end, await second.end]
    assert [result.generated for _, result in results] == alone
    assert shared.engine.counters["preemptions"] >= 1


async def test_cancelled_turn_frees_its_slot(engines: Callable[..., Any]) -> None:
    from tether.backends.llamacpp.engine import Sampling, TurnJob

    h = await engines(slots=1)
    listener = Listener(h.loop, lambda: 0)
    job = TurnJob(h.tokens(NUMBERS), Sampling(temperature=0.0, top_p=1.0, max_tokens=500), listener.emit)
    h.engine.submit(job)
    while not listener.text:
        await asyncio.sleep(0.01)
    job.cancelled.set()
    kind, result = await listener.end
    assert kind == "done" and result.reason == "cancelled" and len(result.generated) < 500
    after = await h.run(h.tokens("Say hi."), 4)  # the one slot is free again
    assert after.generated
    stats = h.engine.stats()
    assert stats["cancelled"] == 1 and stats["slots"]["busy"] == 0 and stats["active_turns"] == 0
