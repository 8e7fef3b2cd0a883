"""The embedded engine shares itself fairly: a short request overtakes a long generation in progress,
and both turns come out as if each had the engine to itself."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI

from .llamacpp_support import (
    MODEL,
    TERMINAL,
    WEATHER_TOOL,
    cached,
    final_response,
    llama_server,
    needs_model,
    turn_tokens,
    ws_turn,
)
from .support import RunningServer, check_sequence_numbers, validate_ws_event

pytestmark = pytest.mark.llamacpp
TOLERANCE = 2  # as in test_llamacpp_cache: the last generated token is evaluated with the next turn
LONG = {"model": MODEL, "input": "Write a long story about a dragon.", "max_output_tokens": 200, "temperature": 0,
        "store": False}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with llama_server(tmp_path_factory.mktemp("fairness")) as running:
        yield running


class Finishes:
    """The order in which streams reach their terminal event."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.order: list[str] = []

    def record(self, name: str) -> None:
        with self.lock:
            self.order.append(name)


def _stream(conn: Any, name: str, finishes: Finishes, first_delta: threading.Event | None = None,
            **request: Any) -> list[dict[str, Any]]:
    conn.response.create(**request)
    events: list[dict[str, Any]] = []
    for event in conn:
        data = event.to_dict()
        validate_ws_event(data)
        events.append(data)
        if data["type"] == "response.output_text.delta" and first_delta is not None:
            first_delta.set()
        if data["type"] in TERMINAL:
            finishes.record(name)
            break
    return events


def _text(response: dict[str, Any]) -> str:
    return "".join(part["text"] for item in response["output"] if item["type"] == "message"
                   for part in item["content"] if part["type"] == "output_text")


def _overtake(long_conn: Any, short_conn: Any, **short_request: Any) -> tuple[list[str], dict[str, Any],
                                                                                 dict[str, Any]]:
    """The long turn on `long_conn`; once its first text delta is in, the short one on `short_conn`.
    Returns the order of their terminal events, and the short and the long response."""
    finishes = Finishes()
    first_delta = threading.Event()
    outcome: dict[str, Any] = {}

    def long_turn() -> None:
        try:
            outcome["long"] = _stream(long_conn, "long", finishes, first_delta, **LONG)
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc
        finally:
            first_delta.set()

    worker = threading.Thread(target=long_turn, daemon=True)
    worker.start()
    assert first_delta.wait(60)
    assert not outcome, "the long turn ended before the short one started"
    short_events = _stream(short_conn, "short", finishes, **short_request)
    worker.join(120)
    assert not worker.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    long_events = outcome["long"]
    for events in (short_events, long_events):
        check_sequence_numbers(events)
    long = final_response(long_events)
    assert long["status"] == "completed" or long["incomplete_details"]["reason"] == "max_output_tokens"
    assert 32 < long["usage"]["output_tokens"] <= 200
    deltas = "".join(e["delta"] for e in long_events if e["type"] == "response.output_text.delta")
    assert deltas and deltas == _text(long)
    return finishes.order, final_response(short_events), long


def test_short_request_overtakes_a_long_generation(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect() as long_conn, client.responses.connect() as short_conn:
        order, short, long = _overtake(long_conn, short_conn, model=MODEL, input="Name a color.",
                                       max_output_tokens=16, temperature=0, store=False)
        assert order == ["short", "long"]
        assert _text(short)
        # both conversations' states survived the interleaving: each continuation reuses its whole turn
        for conn, previous in ((long_conn, long), (short_conn, short)):
            response = final_response(ws_turn(conn, model=MODEL, input="Go on.", max_output_tokens=16,
                                              previous_response_id=previous["id"], temperature=0, store=False))
            assert cached(response) >= turn_tokens(previous) - TOLERANCE


def test_interleaved_turns_keep_their_grammar_and_text(server: RunningServer) -> None:
    """A forced tool call (grammar-constrained over several slices) beside a long story; the story's
    greedy text is the same as when it ran alone."""
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect() as conn:
        alone = final_response(ws_turn(conn, **LONG))
    with client.responses.connect() as long_conn, client.responses.connect() as short_conn:
        order, call, long = _overtake(long_conn, short_conn, model=MODEL, input="What is the weather in Paris?",
                                      tools=[WEATHER_TOOL], tool_choice="required", max_output_tokens=64,
                                      temperature=0, store=False)
    assert order == ["short", "long"]
    [item] = [item for item in call["output"] if item["type"] == "function_call"]
    arguments = json.loads(item["arguments"])
    assert item["name"] == "get_weather" and set(arguments) == {"city", "unit"}
    assert arguments["unit"] in ("celsius", "fahrenheit")
    assert _text(long) == _text(alone)


class Listener:
    """A job's messages, gathered on the event loop; `fail_on_text` makes its first text piece raise."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fail_on_text: bool = False) -> None:
        self.loop = loop
        self.fail_on_text = fail_on_text
        self.text: list[str] = []
        self.first_text = asyncio.Event()
        self.end: asyncio.Future[tuple[str, Any]] = loop.create_future()

    def emit(self, message: tuple[str, Any]) -> None:
        if message[0] == "text" and self.fail_on_text:
            self.fail_on_text = False
            raise RuntimeError("a listener that breaks")
        self.loop.call_soon_threadsafe(self._take, message)

    def _take(self, message: tuple[str, Any]) -> None:
        if message[0] == "text":
            self.text.append(message[1])
            self.first_text.set()
        elif not self.end.done():
            self.end.set_result(message)


async def test_engine_rotation_isolates_errors_and_cancellation() -> None:
    """One slot for three turns: beside a long greedy turn, one turn fails mid-way and one is cancelled
    while parked. The slot rotates between them (each parked exactly and restored), the long turn's
    text is exactly what it is alone, and nothing is left behind."""
    needs_model()
    from tether.backends.llamacpp.engine import Engine, Sampling, TurnJob
    from tether.backends.llamacpp.model_file import default_model_path

    engine = Engine(default_model_path(), 2048, 2, 16 * 1024 * 1024, slots=1)
    model = await engine.start()
    loop = asyncio.get_running_loop()

    def job(text: str, listener: Listener, max_tokens: int) -> TurnJob:
        prompt = model.tokenize(text.encode(), add_bos=model.add_bos)
        return TurnJob(prompt, Sampling(temperature=0.0, top_p=1.0, max_tokens=max_tokens), listener.emit)

    try:
        alone = Listener(loop)
        engine.submit(job("Once upon a time, a dragon", alone, 96))
        assert (await alone.end)[0] == "done"
        assert engine.counters["preemptions"] == 0  # one turn: never parked

        long, broken, doomed = Listener(loop), Listener(loop, fail_on_text=True), Listener(loop)
        submitted = time.perf_counter()
        engine.submit(job("Once upon a time, a dragon", long, 96))
        await long.first_text.wait()
        engine.submit(job("The history of Rome", broken, 64))
        doomed_job = job("A list of numbers: 1, 2, 3,", doomed, 200)
        engine.submit(doomed_job)
        await doomed.first_text.wait()
        doomed_job.cancelled.set()

        kind, payload = await broken.end
        assert kind == "error" and payload[0] == "server_error"
        kind, cancelled = await doomed.end
        assert kind == "done" and cancelled.reason == "cancelled" and len(cancelled.generated) < 200
        kind, result = await long.end
        waited = time.perf_counter() - submitted
        assert kind == "done" and result.reason == "length" and len(result.generated) == 96
        assert result.text == "".join(alone.text) == "".join(long.text)
        assert 0 < result.model_seconds < waited  # its own steps, not the other turns'
        stats = engine.stats()
        assert stats["preemptions"] >= 1 and stats["restores"] >= 1
        assert stats["active_turns"] == 0 and stats["waiting_turns"] == 0 and stats["slots"]["busy"] == 0
    finally:
        await engine.aclose()
