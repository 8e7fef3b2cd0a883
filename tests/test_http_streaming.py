"""SSE streaming over HTTP: event shapes (strict), order, numbering, output indices, function calls,
the SDK's `stream()` helper and `stream_options.include_obfuscation`."""

from __future__ import annotations

import json
from typing import Any

from openai import OpenAI

from .support import (
    TEXT_SEQUENCE,
    RunningServer,
    ScriptedServer,
    call_sequence,
    check_output_indices,
    check_sequence_numbers,
    collapse,
    post_sse,
    sse_lines_to_events,
    validate_sse_event,
)

ANSWER = "Streaming works: one delta at a time, in order, every time, with every event numbered from zero upwards."
TURNS = [
    {"text": ANSWER},
    {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}]},
    {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}},
                    {"name": "get_time", "arguments": {"tz": "Europe/Rome"}},
                    {"name": "get_weather", "arguments": {"city": "Oslo"}}]},
]
TOOLS: list[Any] = [
    {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}},
]


SERVER = ScriptedServer(TURNS)


def check_stream(events: list[dict[str, Any]], expected: list[str]) -> None:
    for event in events:
        validate_sse_event(event)
    assert collapse([e["type"] for e in events]) == expected
    check_sequence_numbers(events)
    check_output_indices(events)
    created = events[0]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    assert all(e["response"]["id"] == created["id"] for e in events if "response" in e)


def test_raw_sse_text_answer(server: RunningServer, client: OpenAI) -> None:
    with client.responses.with_streaming_response.create(model="m", input="hi", stream=True) as raw:
        assert raw.http_response.headers["content-type"].startswith("text/event-stream")
        events = sse_lines_to_events(raw.iter_lines())
    check_stream(events, TEXT_SEQUENCE)
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == ANSWER
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert done["text"] == ANSWER
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["usage"]["output_tokens"] > 0
    assert final["output"][0]["content"][0]["text"] == ANSWER
    # Stored: what the stream finished with is what GET returns.
    assert client.responses.retrieve(final["id"]).to_dict()["output"] == final["output"]


def test_sdk_create_stream_true(client: OpenAI) -> None:
    events = [event.to_dict() for event in client.responses.create(model="m", input="hi", stream=True)]
    check_stream(events, TEXT_SEQUENCE)
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert all(isinstance(e["obfuscation"], str) and e["obfuscation"] for e in deltas)


def test_include_obfuscation_false_removes_it(client: OpenAI) -> None:
    stream = client.responses.create(
        model="m", input="hi", stream=True, stream_options={"include_obfuscation": False}
    )
    events = [event.to_dict() for event in stream]
    check_stream(events, TEXT_SEQUENCE)
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert deltas and all("obfuscation" not in e for e in deltas)


def test_sdk_stream_helper(client: OpenAI) -> None:
    with client.responses.stream(model="m", input="hi") as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert collapse(types) == TEXT_SEQUENCE
    assert final.status == "completed" and final.output_text == ANSWER


def _chain_to_turn(client: OpenAI, turn: int) -> str:
    """A stored chain whose next model turn is `turn` (the script's index)."""
    previous = client.responses.create(model="m", input="weather?", tools=TOOLS)
    for _ in range(turn - 1):
        calls = [item for item in previous.output if item.type == "function_call"]
        previous = client.responses.create(
            model="m", previous_response_id=previous.id, tools=TOOLS,
            input=[{"type": "function_call_output", "call_id": c.call_id, "output": "ok"} for c in calls] or "go on",
        )
    return previous.id


def test_one_function_call_stream(server: RunningServer, client: OpenAI) -> None:
    previous = _chain_to_turn(client, 1)
    events = post_sse(server.url, {"model": "m", "input": "and now?", "previous_response_id": previous,
                                   "tools": TOOLS})
    check_stream(events, call_sequence(1))
    added = events[2]["item"]
    assert added["type"] == "function_call" and added["status"] == "in_progress" and added["arguments"] == ""
    assert added["name"] == "get_weather" and added["call_id"].startswith("call_")
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    expected = json.dumps(TURNS[1]["tool_calls"][0]["arguments"], separators=(",", ":"))
    assert json.loads(done["arguments"]) == json.loads(expected)
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert "".join(deltas) == done["arguments"]
    [item] = events[-1]["response"]["output"]
    assert item["status"] == "completed" and item["arguments"] == done["arguments"]
    assert item["call_id"] == added["call_id"] and item["id"] == added["id"]


def test_parallel_function_calls_stream(client: OpenAI) -> None:
    previous = _chain_to_turn(client, 2)
    events = [
        event.to_dict()
        for event in client.responses.create(model="m", input="more", previous_response_id=previous, tools=TOOLS,
                                             stream=True)
    ]
    check_stream(events, call_sequence(3))
    output = events[-1]["response"]["output"]
    assert [item["name"] for item in output] == ["get_weather", "get_time", "get_weather"]
    assert [json.loads(item["arguments"]) for item in output] == [c["arguments"] for c in TURNS[2]["tool_calls"]]
    assert len({item["call_id"] for item in output}) == 3
    for index, item in enumerate(output):
        per_item = [e for e in events if e.get("output_index") == index]
        assert per_item[0]["type"] == "response.output_item.added"
        assert per_item[-1]["type"] == "response.output_item.done" and per_item[-1]["item"] == item
        done = next(e for e in per_item if e["type"] == "response.function_call_arguments.done")
        assert done["arguments"] == item["arguments"]


def test_stream_helper_collects_parallel_calls(client: OpenAI) -> None:
    previous = _chain_to_turn(client, 2)
    with client.responses.stream(model="m", input="more", previous_response_id=previous, tools=TOOLS) as stream:
        for _event in stream:
            pass
        final = stream.get_final_response()
    assert [item.type for item in final.output] == ["function_call"] * 3


def test_max_output_tokens_ends_with_incomplete(server: RunningServer) -> None:
    events = post_sse(server.url, {"model": "m", "input": "hi", "max_output_tokens": 16,
                                   "stream_options": {"include_obfuscation": False}})
    assert events[-1]["type"] == "response.incomplete"
    check_sequence_numbers(events)
    check_output_indices(events)
    final = events[-1]["response"]
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete"
    text = final["output"][0]["content"][0]["text"]
    assert text and ANSWER.startswith(text) and text != ANSWER
