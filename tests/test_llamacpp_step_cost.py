"""A long prompt's prefill chunk sized by time: the step-cost fit recovers a machine's costs from the
steps it ran, and the scheduler gives a long prompt only what keeps a step within its budget, never
splits a short one, and keeps every prompt moving."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("llama_cpp")

from tether.backends.llamacpp.scheduler import MIN_CHUNK, PREFILL_CHUNK, STARVE_SECONDS, STEP_BUDGET, Scheduler
from tether.backends.llamacpp.step_cost import READY_STEPS, StepCost, attended_positions
from tether.backends.llamacpp.turn import Turn

pytestmark = pytest.mark.llamacpp

# the shape measured on the 2-core test machine (SmolLM2-135M): 3.8 ms a token at depth 0, 13.3 at 8k
OVERHEAD, PER_TOKEN, PER_POSITION = 0.009, 0.0038, 1.19e-6


def _seconds(tokens: int, attended: int) -> float:
    return OVERHEAD + PER_TOKEN * tokens + PER_POSITION * attended


def _steps_of_a_run(cost: StepCost, rng: random.Random, count: int, noise: float = 0.0) -> None:
    """Steps like the engine's: decode steps of a few turns, and prefill chunks at growing depths."""
    for _ in range(count):
        decoding = rng.randrange(0, 5)
        depths = [rng.randrange(0, 8000) for _ in range(decoding)]
        tokens, attended = decoding, sum(depths)
        if rng.random() < 0.5:
            chunk, start = rng.randrange(16, 257), rng.randrange(0, 8000)
            tokens += chunk
            attended += attended_positions(start, chunk)
        if tokens == 0:
            tokens, attended = 1, rng.randrange(0, 8000)
        seconds = _seconds(tokens, attended) * (1 + rng.uniform(-noise, noise))
        cost.record(tokens, attended, seconds)


def test_attended_positions_sums_each_tokens_position() -> None:
    assert attended_positions(0, 1) == 0
    assert attended_positions(100, 1) == 100
    assert attended_positions(10, 4) == 10 + 11 + 12 + 13
    assert attended_positions(4000, 0) == 0


def test_fit_knows_nothing_before_enough_steps() -> None:
    cost = StepCost()
    for _ in range(READY_STEPS - 1):
        cost.record(1, 100, 0.01)
    assert cost.coefficients is None and cost.predict(10, 0) is None
    assert cost.tokens_within(STEP_BUDGET, 0, 0, 0, 256) is None
    assert cost.stats()["ms_per_token"] is None
    cost.record(1, 100, 0.01)
    assert cost.coefficients is not None


def test_fit_recovers_the_machines_costs_from_noisy_steps() -> None:
    cost = StepCost()
    _steps_of_a_run(cost, random.Random(1), 200, noise=0.05)
    coefficients = cost.coefficients
    assert coefficients is not None
    overhead, per_token, per_position = coefficients
    assert per_token == pytest.approx(PER_TOKEN, rel=0.1)
    assert per_position == pytest.approx(PER_POSITION, rel=0.15)
    assert 0 <= overhead < 0.03
    for tokens, start in ((256, 0), (256, 4000), (64, 8000), (1, 8000)):
        predicted = cost.predict(tokens, attended_positions(start, tokens))
        assert predicted == pytest.approx(_seconds(tokens, attended_positions(start, tokens)), rel=0.15)


def test_fit_follows_a_machine_that_slows_down() -> None:
    cost = StepCost()
    rng = random.Random(2)
    _steps_of_a_run(cost, rng, 100)
    before = cost.predict(256, attended_positions(4000, 256))
    for _ in range(150):  # a neighbour takes a core: every step now costs twice as much
        tokens, start = rng.randrange(1, 257), rng.randrange(0, 8000)
        cost.record(tokens, attended_positions(start, tokens), 2 * _seconds(tokens, attended_positions(start, tokens)))
    after = cost.predict(256, attended_positions(4000, 256))
    assert before is not None and after is not None
    assert after == pytest.approx(2 * before, rel=0.1)


def test_coefficients_are_never_negative() -> None:
    cost = StepCost()
    for tokens in range(1, 40):  # steps that get cheaper with more tokens: no cost can be negative
        cost.record(tokens, 0, 0.1 - tokens * 0.001)
    coefficients = cost.coefficients
    assert coefficients is not None and min(coefficients) >= 0
    assert cost.predict(1000, 10**7) is not None


def test_tokens_within_is_the_largest_count_that_fits() -> None:
    cost = StepCost()
    _steps_of_a_run(cost, random.Random(3), 200)
    for start in (0, 1000, 4000, 8000):
        n = cost.tokens_within(STEP_BUDGET, 0, 0, start, 512)
        assert n is not None and 0 < n < 512
        assert cost.predict(n, attended_positions(start, n)) <= STEP_BUDGET  # type: ignore[operator]
        assert cost.predict(n + 1, attended_positions(start, n + 1)) > STEP_BUDGET  # type: ignore[operator]
    deep, shallow = (cost.tokens_within(STEP_BUDGET, 0, 0, start, 512) for start in (8000, 0))
    assert deep is not None and shallow is not None and deep < shallow / 2  # a deep token costs more
    assert cost.tokens_within(STEP_BUDGET, 1000, 0, 0, 512) == 0  # the step is over budget already
    assert cost.tokens_within(10.0, 0, 0, 0, 300) == 300  # capped by `most`


# -- the scheduler's chunks -----------------------------------------------------------------------

def _scheduler(cost: StepCost) -> Scheduler:
    engine = SimpleNamespace(shape=SimpleNamespace(threads=2), step_cost=cost)
    return Scheduler(engine, executor=None)  # type: ignore[arg-type]


def _turn(depth: int, pending: int, since: int = 0) -> Turn:
    turn = Turn(SimpleNamespace())  # type: ignore[arg-type]
    turn.slot = SimpleNamespace(tokens=[0] * depth, seq=0)  # type: ignore[assignment]
    turn.pending = [1] * pending
    turn.since = since
    return turn


def _warm_cost() -> StepCost:
    cost = StepCost()
    _steps_of_a_run(cost, random.Random(4), 200)
    return cost


def _chunks(scheduler: Scheduler, turns: list[Turn]) -> list[int]:
    chunks: dict[int, Any] = scheduler._prefill_chunks(turns, 512)
    return [chunks.get(id(turn), 0) for turn in turns]


def test_a_long_prompt_gets_what_fits_the_budget_and_less_at_depth() -> None:
    cost = _warm_cost()
    scheduler = _scheduler(cost)
    decoder = _turn(1000, 1)
    shallow, deep = _turn(0, 3000), _turn(2000, 2000)
    [_, n_shallow] = _chunks(scheduler, [decoder, shallow])
    [_, n_deep] = _chunks(scheduler, [decoder, deep])
    assert MIN_CHUNK <= n_deep < n_shallow <= PREFILL_CHUNK
    for n, start in ((n_shallow, 0), (n_deep, 2000)):
        seconds = cost.predict(1 + n, 1000 + attended_positions(start, n))
        assert seconds is not None and seconds <= STEP_BUDGET


def test_before_the_fit_a_long_prompt_gets_the_token_count() -> None:
    scheduler = _scheduler(StepCost())
    decoder, long = _turn(2000, 1), _turn(6000, 2000)
    assert _chunks(scheduler, [decoder, long]) == [0, PREFILL_CHUNK]
    assert _chunks(scheduler, [long]) == [512]  # nothing decodes: the whole batch


def test_a_continuation_goes_whole_and_a_second_waits_if_both_overrun_the_budget() -> None:
    scheduler = _scheduler(_warm_cost())
    first, second, long = _turn(4000, 150), _turn(4000, 160), _turn(4000, 3000)
    # 150 tokens at 4k are about 1.3 s, over the budget: whole all the same, and the rest waits
    assert _chunks(scheduler, [long, second, first]) == [0, 0, 150]
    # the next step: the second continuation, whole
    first.pending = [1]
    assert _chunks(scheduler, [long, second, first]) == [0, 160, 0]


def test_short_continuations_that_fit_together_share_a_step() -> None:
    scheduler = _scheduler(_warm_cost())
    a, b = _turn(100, 10), _turn(200, 12)
    assert _chunks(scheduler, [a, b]) == [10, 12]


def test_a_step_the_continuations_fill_carries_no_long_prompt() -> None:
    scheduler = _scheduler(_warm_cost())
    continuation, long = _turn(4000, 150), _turn(4000, 3000)
    scheduler._clock = long.fed_at + STARVE_SECONDS  # even a starved one: the decode steps after carry it
    assert _chunks(scheduler, [continuation, long]) == [150, 0]
    continuation.pending = [1]  # the next step, decoding: the long prompt's chunk
    [_, n] = _chunks(scheduler, [continuation, long])
    assert n >= MIN_CHUNK


def test_a_starved_long_prompt_goes_before_the_other_long_ones() -> None:
    scheduler = _scheduler(_warm_cost())
    shorter, longer = _turn(4000, 1000), _turn(4000, 3000)
    assert _chunks(scheduler, [shorter, longer]) == [MIN_CHUNK, 0]  # fewest left first; one fills the step
    assert shorter.fed_at == scheduler._clock
    scheduler._clock += STARVE_SECONDS  # the longer one has waited that long
    shorter.fed_at = scheduler._clock
    assert _chunks(scheduler, [shorter, longer]) == [0, MIN_CHUNK]


def test_the_step_budget_is_a_fraction_of_a_fixed_chunks_time_at_depth() -> None:
    """What the budget buys on the measured machine: 256 tokens at 4k took 2.1 s, so a continuation
    arriving during such a chunk waited up to that long; now a chunk there is a quarter of a second."""
    fixed = _seconds(PREFILL_CHUNK, attended_positions(4000, PREFILL_CHUNK))
    assert fixed > 1.5
    scheduler = _scheduler(_warm_cost())
    [n] = _chunks(scheduler, [_turn(4000, 3000)])
    assert MIN_CHUNK <= n < PREFILL_CHUNK / 4
    chunk_seconds = _seconds(n, attended_positions(4000, n))
    assert chunk_seconds < fixed / 4
