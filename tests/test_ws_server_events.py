"""WebSocket mode: server events (per-response sequence numbers, stream_id on named lanes only, nested errors)."""

from __future__ import annotations

from typing import Any

import pytest
from openai import AsyncOpenAI, OpenAI

from .support import (
    TEXT_SEQUENCE,
    RunningServer,
    ScriptedServer,
    call_sequence,
    check_output_indices,
    check_sequence_numbers,
    collapse,
)
from .ws_support import acollect, assert_ws_error, by_lane, call_outputs, collect, completed, create_event, recv

TOOLS = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]
TURNS = [
    {"tool_calls": [{"name": "lookup", "arguments": {"q": "a"}}, {"name": "lookup", "arguments": {"q": "b"}}]},
    {"text": "all looked up, here is a somewhat longer answer"},
]
TOOL_SEQUENCE = call_sequence(2)


SERVER = ScriptedServer(TURNS)


def run_loop(conn: Any, stream_id: str | None) -> list[list[dict[str, Any]]]:
    """A tool turn then its continuation on one lane; the events of each response."""
    lane = {"stream_id": stream_id} if stream_id is not None else {}
    conn.send(create_event(input="look things up", tools=TOOLS, store=False, **lane))
    first = collect(conn)
    conn.send(create_event(input=call_outputs(completed(first)), previous_response_id=completed(first)["id"],
                           tools=TOOLS, store=False, **lane))
    second = collect(conn)
    return [first, second]


def test_default_lane_sequence_numbers_from_zero_and_no_stream_id(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect() as conn:
        first, second = run_loop(conn, None)
    assert collapse([e["type"] for e in first]) == TOOL_SEQUENCE
    assert collapse([e["type"] for e in second]) == TEXT_SEQUENCE
    for events in (first, second):
        check_sequence_numbers(events)  # each response numbers from 0
        check_output_indices(events)
        assert all("stream_id" not in event for event in events)
    # Item ids in the stream are the ids in the final response.
    done_ids = [e["item"]["id"] for e in first if e["type"] == "response.output_item.done"]
    assert done_ids == [item["id"] for item in completed(first)["output"]]


@pytest.mark.parametrize("stream_id", ["agent_1", "a", "A.b-c_9", "x" * 256])
def test_named_lane_echoes_stream_id_on_every_event(server: RunningServer, stream_id: str) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect() as conn:
        first, second = run_loop(conn, stream_id)
        conn.send(create_event(input="x", previous_response_id="resp_nope", stream_id=stream_id))
        [error] = collect(conn)
    for events in (first, second):
        check_sequence_numbers(events)
        check_output_indices(events)
        assert all(event.get("stream_id") == stream_id for event in events)
    assert_ws_error(error, "previous_response_not_found", "previous_response_id")
    assert error["stream_id"] == stream_id  # request-scoped errors carry the lane too


async def test_two_lanes_each_number_from_zero(server: RunningServer) -> None:
    client = AsyncOpenAI(base_url=server.base_url, api_key="unused")
    async with client.responses.connect() as conn:
        await conn.send(create_event(input="one", stream_id="one", store=False, tools=TOOLS))
        await conn.send(create_event(input="two", stream_id="two", store=False, tools=TOOLS))
        await conn.send(create_event(input="default", store=False, tools=TOOLS))
        events = await acollect(conn, terminals=3)
    lanes = by_lane(events)
    assert set(lanes) == {"one", "two", None}
    for lane_events in lanes.values():
        check_sequence_numbers(lane_events)
        assert collapse([e["type"] for e in lane_events]) == TOOL_SEQUENCE


def test_error_events_are_nested_with_status(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect() as conn:
        conn.send(create_event(input="x", previous_response_id="resp_does_not_exist"))
        [event] = collect(conn)
        assert_ws_error(event, "previous_response_not_found", "previous_response_id")
        assert "resp_does_not_exist" in event["error"]["message"]
        assert set(event) <= {"type", "status", "error", "stream_id", "sequence_number"}
        assert set(event["error"]) <= {"type", "code", "message", "param", "headers"}

        conn.send(create_event(input="x", temperature=9))
        [event] = collect(conn)
        assert_ws_error(event, None, "temperature")

        conn.send(create_event(input=[{"type": "no_such_item"}]))
        [event] = collect(conn)
        assert event["type"] == "error" and event["status"] == 400
        assert event["error"]["param"] and event["error"]["param"].startswith("input")

        conn.send({"type": "response.create", "input": "no model"})
        [event] = collect(conn)
        assert_ws_error(event, None, "model")

        # No response.created was sent for any of them, and the socket still works.
        conn.send(create_event(input="fine", tools=TOOLS, store=False))
        first = recv(conn)
        assert first["type"] == "response.created" and first["sequence_number"] == 0
        collect(conn)
