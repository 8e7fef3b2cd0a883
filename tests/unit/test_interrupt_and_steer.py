"""The inner ring: `response.interrupt` and `response.steer` on the connection state machine, with the
scripted model streaming slowly enough to be reached mid-answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson

from tether.api.client_events import CreateEvent, InterruptEvent, SteerEvent, decode_client_event
from tether.backends.scripted import Script, ScriptedBackend
from tether.core.book import ResponseBook
from tether.core.connection import ConnectionLimits, Outcome, ResponsesConnection, Run, Send
from tether.core.connection_cache import CacheBudget
from tether.core.responder import TurnEngine
from tether.store.memory import MemoryStore

LONG_TEXT = " ".join(f"word{index}" for index in range(200))
TOOLS = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]


def make_connection(turns: list[dict[str, Any]], tokens_per_second: float = 400) -> ResponsesConnection:
    script = Script.from_dict({"turns": turns, "tokens_per_second": tokens_per_second, "ttft_ms": 0})
    engine = TurnEngine(ScriptedBackend(script), ResponseBook(MemoryStore()))
    return ResponsesConnection(engine, "owner", ConnectionLimits(), CacheBudget(1 << 30))


def create(**fields: Any) -> CreateEvent:
    body = {"type": "response.create", "model": "m", "input": "hi", "store": False, **fields}
    event = decode_client_event(orjson.dumps(body), time.perf_counter())
    assert isinstance(event, CreateEvent)
    return event


def only_run(outcomes: list[Outcome]) -> Run:
    (run,) = [outcome for outcome in outcomes if isinstance(outcome, Run)]
    return run


async def play(
    connection: ResponsesConnection, run: Run, on_event: Callable[[dict[str, Any]], None] | None = None
) -> tuple[list[dict[str, Any]], list[Outcome]]:
    events: list[dict[str, Any]] = []
    async for event in run.turn.events():
        events.append(event)
        if on_event is not None:
            on_event(event)
        await asyncio.sleep(0)
    return events, connection.finished(run.turn)


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


# -- interrupt -----------------------------------------------------------------------------------
async def test_interrupt_stops_at_once_discards_the_partial_item_and_leaves_a_valid_parent() -> None:
    connection = make_connection([{"text": LONG_TEXT}, {"text": "after"}])
    run = only_run(connection.receive(create()))
    replies: list[list[Outcome]] = []

    def interrupt_on_first_delta(event: dict[str, Any]) -> None:
        if event["type"] == "response.output_text.delta" and not replies:
            response_id = run.turn.turn.response_id if run.turn.turn else ""
            replies.append(connection.receive(InterruptEvent(response_id, "discard_partial_items")))

    events, _ = await play(connection, run, interrupt_on_first_delta)
    assert replies == [[]]
    kinds = types(events)
    accepted = kinds.index("response.interrupt.accepted")
    assert kinds[accepted + 1] == "response.output_item.interrupted"
    assert kinds[-1] == "response.incomplete"
    assert kinds.count("response.output_text.delta") < 10  # stopped at once, not after the answer
    interrupted = events[accepted + 1]
    added = next(event for event in events if event["type"] == "response.output_item.added")
    assert interrupted["item_id"] == added["item"]["id"] and interrupted["output_index"] == 0
    final = events[-1]["response"]
    assert final["incomplete_details"] == {"reason": "interrupted"} and final["output"] == []
    numbers = [event["sequence_number"] for event in events]
    assert numbers == list(range(len(events)))
    # The interrupted response is a parent holding only its completed items (none here).
    follow = only_run(connection.receive(create(previous_response_id=final["id"], input="go on")))
    follow_events, _ = await play(connection, follow)
    assert follow_events[-1]["type"] == "response.completed"
    assert follow.turn.turn is not None
    assert [item["role"] for item in follow.turn.turn.context.to_list()] == ["user", "user"]


async def test_interrupt_of_an_unknown_or_finished_response_fails_clearly() -> None:
    connection = make_connection([{"text": "short"}], tokens_per_second=1e9)
    (unknown,) = connection.receive(InterruptEvent("resp_nope", "discard_partial_items"))
    assert isinstance(unknown, Send)
    assert unknown.event["type"] == "response.interrupt.failed"
    assert unknown.event["error"]["code"] == "response_not_found"
    run = only_run(connection.receive(create()))
    events, _ = await play(connection, run)
    (late,) = connection.receive(InterruptEvent(events[-1]["response"]["id"], "discard_partial_items"))
    assert isinstance(late, Send) and late.event["error"]["code"] == "response_already_completed"


# -- steering ------------------------------------------------------------------------------------
async def test_steer_stops_at_a_boundary_and_a_successor_continues_with_the_input_and_the_session() -> None:
    connection = make_connection([{"text": LONG_TEXT}, {"text": "steered answer"}])
    run = only_run(connection.receive(create(temperature=0.5)))
    replies: list[list[Outcome]] = []

    def steer_on_first_delta(event: dict[str, Any]) -> None:
        if event["type"] == "response.output_text.delta" and not replies:
            response_id = run.turn.turn.response_id if run.turn.turn else ""
            replies.append(connection.receive(SteerEvent(response_id, "Actually, be brief.")))

    events, after = await play(connection, run, steer_on_first_delta)
    assert replies == [[]]
    kinds = types(events)
    accepted = events[kinds.index("response.steer.accepted")]
    response_id = events[0]["response"]["id"]
    assert accepted["steer"]["previous_response_id"] == response_id and accepted["steer"]["id"].startswith("steer")
    assert kinds[-1] == "response.incomplete"
    final = events[-1]["response"]
    assert final["incomplete_details"] == {"reason": "steered"}
    kept = final["output"][0]["content"][0]["text"]
    assert kept and LONG_TEXT.startswith(kept) and kept != LONG_TEXT  # what was produced stays
    stopped_session = run.turn.turn.session if run.turn.turn else None
    successor = only_run(after)
    successor_events, _ = await play(connection, successor)
    created = successor_events[0]["response"]
    assert successor_events[0]["type"] == "response.created"
    assert created["previous_response_id"] == response_id and created["temperature"] == 0.5
    assert successor_events[-1]["type"] == "response.completed"
    assert successor.turn.turn is not None
    assert successor.turn.turn.input_items[0]["content"][0]["text"] == "Actually, be brief."
    assert successor.turn.turn.session is stopped_session  # the stopped response's state, reused


async def test_steer_of_a_response_that_stops_for_tool_output_is_pending_then_joins_the_continuation() -> None:
    turns = [{"tool_calls": [{"name": "lookup", "arguments": {"q": "x" * 200}}]}, {"text": "done"}]
    connection = make_connection(turns)
    run = only_run(connection.receive(create(tools=TOOLS)))
    replies: list[list[Outcome]] = []

    def steer_on_arguments(event: dict[str, Any]) -> None:
        if event["type"] == "response.function_call_arguments.delta" and not replies:
            response_id = run.turn.turn.response_id if run.turn.turn else ""
            replies.append(connection.receive(SteerEvent(response_id, "Also check y.")))

    events, after = await play(connection, run, steer_on_arguments)
    assert types(events)[-1] in ("response.completed", "response.incomplete")
    call = events[-1]["response"]["output"][0]
    assert call["type"] == "function_call" and call["status"] == "completed"  # never cut inside a call
    pending = [outcome.event for outcome in after if isinstance(outcome, Send)]
    assert [event["type"] for event in pending] == ["response.steer.pending"]
    assert pending[0]["required_input"] == [
        {"type": "function_call_output", "call_id": call["call_id"], "name": "lookup"}
    ]
    assert not [outcome for outcome in after if isinstance(outcome, Run)]
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "42"}
    continuation = only_run(connection.receive(
        create(previous_response_id=events[-1]["response"]["id"], input=[output], tools=TOOLS)))
    continuation_events, _ = await play(connection, continuation)
    assert continuation_events[-1]["type"] == "response.completed"
    assert continuation.turn.turn is not None
    new_items = continuation.turn.turn.input_items
    assert [item["type"] for item in new_items] == ["function_call_output", "message"]
    assert new_items[1]["content"][0]["text"] == "Also check y."


async def test_steer_failures_name_their_reason() -> None:
    connection = make_connection([{"text": LONG_TEXT}], tokens_per_second=1e9)

    def failure(event: SteerEvent) -> dict[str, Any]:
        (outcome,) = connection.receive(event)
        assert isinstance(outcome, Send) and outcome.event["type"] == "response.steer.failed"
        assert outcome.event["steer"]["input"] == event.input and "id" not in outcome.event["steer"]
        return dict(outcome.event["error"])

    assert failure(SteerEvent("resp_unknown", "x"))["code"] == "response_not_found"
    assert failure(SteerEvent(None, "x"))["code"] == "invalid_input"
    run = only_run(connection.receive(create()))
    events, _ = await play(connection, run)
    assert failure(SteerEvent(events[-1]["response"]["id"], "x"))["code"] == "response_already_completed"


async def test_invalid_or_excess_steering_input_is_refused_while_the_response_runs() -> None:
    connection = make_connection([{"text": LONG_TEXT}], tokens_per_second=200)
    run = only_run(connection.receive(create()))
    codes: list[str] = []

    def steer_badly(event: dict[str, Any]) -> None:
        if event["type"] != "response.output_text.delta" or codes:
            return
        response_id = run.turn.turn.response_id if run.turn.turn else ""
        bad = [{"type": "function_call_output", "call_id": "c", "output": "x"}]
        for attempt in (bad, [], *(["more"] * 9)):
            for outcome in connection.receive(SteerEvent(response_id, attempt)):
                assert isinstance(outcome, Send)
                codes.append(outcome.event["error"]["code"])

    await play(connection, run, steer_badly)
    assert codes == ["invalid_input", "invalid_input", "too_many_pending_steers"]
