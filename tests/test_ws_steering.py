"""`response.steer` and `response.interrupt` over a real WebSocket: the SDK's `conn.response.steer()`,
and raw frames as Codex sends them. Every event the SDK knows is validated strictly; the interrupt
events (a Codex extension the SDK has no type for) are checked field by field."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from websockets.sync.client import connect

from .support import RunningServer, ScriptedServer, serve_script, validate_ws_event
from .ws_support import RECV_TIMEOUT_S, create_event, user

LONG_TEXT = " ".join(f"word{index}" for index in range(400))
TURNS = [{"text": LONG_TEXT}, {"text": "Brief answer."}]
TOOL_TURNS = [{"tool_calls": [{"name": "lookup", "arguments": {"q": "x" * 300}}]}, {"text": "looked up"}]
TOOLS = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]
# Events the SDK's union has no model for: checked here by their exact fields.
EXTENSION_FIELDS = {
    "response.interrupt.accepted": {"type", "response_id", "sequence_number"},
    "response.output_item.interrupted": {"type", "response_id", "item_id", "output_index", "sequence_number"},
    "response.interrupt.failed": {"type", "response_id", "sequence_number", "error"},
}


SERVER = ScriptedServer(TURNS, tokens_per_second=300)


@pytest.fixture(scope="module")
def tool_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve_script(tmp_path_factory.mktemp("steering-tools"), TOOL_TURNS, tokens_per_second=300) as running:
        yield running


def receive(ws: Any) -> dict[str, Any]:
    raw = getattr(ws, "_connection", ws).recv(timeout=RECV_TIMEOUT_S)  # under an SDK connection, its socket
    assert isinstance(raw, str)
    event: dict[str, Any] = json.loads(raw)
    if event["type"] in EXTENSION_FIELDS:
        assert set(event) == EXTENSION_FIELDS[event["type"]], event
    elif event["type"] == "response.incomplete" and event["response"]["incomplete_details"]["reason"] == "interrupted":
        # `interrupted` is Codex's reason, not in the SDK's enum: validate the rest with the SDK's own.
        validate_ws_event({**event, "response": {**event["response"], "incomplete_details": {"reason": "steered"}}})
    else:
        validate_ws_event(event)
    return event


def until(ws: Any, kind: str) -> list[dict[str, Any]]:
    events = []
    while True:
        events.append(receive(ws))
        if events[-1]["type"] == kind:
            return events


def test_sdk_steer_stops_the_response_and_a_successor_continues_with_the_input(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect() as conn:
        conn.response.create(model="m", input="Tell me everything.", store=False, temperature=0.3)
        first = until(conn, "response.output_text.delta")
        response_id = first[0]["response"]["id"]
        conn.response.steer(input="Actually, be brief.", previous_response_id=response_id)
        events = until(conn, "response.incomplete")
        accepted = [event for event in events if event["type"] == "response.steer.accepted"]
        assert len(accepted) == 1 and accepted[0]["steer"]["previous_response_id"] == response_id
        stopped = events[-1]["response"]
        assert stopped["incomplete_details"] == {"reason": "steered"}
        kept = stopped["output"][0]["content"][0]["text"]
        assert kept and LONG_TEXT.startswith(kept) and len(kept) < len(LONG_TEXT)
        successor = until(conn, "response.completed")
        created = successor[0]
        assert created["type"] == "response.created"
        assert created["response"]["previous_response_id"] == response_id
        assert created["response"]["temperature"] == 0.3  # the successor inherits the settings
        assert successor[-1]["response"]["output"][0]["content"][0]["text"] == "Brief answer."
        numbers = [event["sequence_number"] for event in first + events]
        assert numbers == list(range(len(numbers)))


def test_sdk_steer_of_an_unknown_response_fails_and_the_socket_stays_usable(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect() as conn:
        conn.response.steer(input="hello", previous_response_id="resp_unknown")
        failed = receive(conn)
        assert failed["type"] == "response.steer.failed"
        assert failed["error"]["code"] == "response_not_found" and failed["steer"]["input"] == "hello"
        conn.response.create(model="m", input="hi", store=False, max_output_tokens=16)
        assert until(conn, "response.incomplete")[-1]["response"]["incomplete_details"] == {
            "reason": "max_output_tokens"}


def test_steer_of_a_response_that_stops_for_tool_output_is_pending(tool_server: RunningServer) -> None:
    client = OpenAI(base_url=tool_server.base_url, api_key="unused")
    with client.responses.connect() as conn:
        conn.response.create(model="m", input="Look it up.", store=False, tools=TOOLS)  # type: ignore[arg-type]
        first = until(conn, "response.function_call_arguments.delta")
        response_id = first[0]["response"]["id"]
        conn.response.steer(input="Also check y.", previous_response_id=response_id)
        events = until(conn, "response.steer.pending")
        terminal = next(event for event in events if event["type"] in ("response.completed", "response.incomplete"))
        call = terminal["response"]["output"][0]
        assert call["type"] == "function_call" and json.loads(call["arguments"]) == {"q": "x" * 300}
        assert events[-1]["required_input"] == [
            {"type": "function_call_output", "call_id": call["call_id"], "name": "lookup"}]
        conn.response.create(model="m", previous_response_id=response_id, store=False, tools=TOOLS,  # type: ignore[arg-type]
                             input=[{"type": "function_call_output", "call_id": call["call_id"], "output": "42"}])
        done = until(conn, "response.completed")
        assert done[-1]["response"]["output"][0]["content"][0]["text"] == "looked up"


def test_interrupt_stops_at_once_and_the_response_stays_a_valid_parent(server: RunningServer) -> None:
    with connect(server.ws_url, max_size=None) as ws:
        ws.send(json.dumps(create_event(input=[user("Tell me everything.")], store=False)))
        first = until(ws, "response.output_text.delta")
        response_id = first[0]["response"]["id"]
        ws.send(json.dumps({"type": "response.interrupt", "response_id": response_id,
                            "mode": "discard_partial_items"}))
        events = until(ws, "response.incomplete")
        kinds = [event["type"] for event in events]
        accepted = kinds.index("response.interrupt.accepted")
        assert kinds[accepted + 1] == "response.output_item.interrupted"
        assert kinds.count("response.output_text.delta") < 40  # stopped at once, not at the end of the answer
        item_id = next(event for event in first if event["type"] == "response.output_item.added")["item"]["id"]
        assert events[accepted + 1]["item_id"] == item_id and events[accepted + 1]["response_id"] == response_id
        final = events[-1]["response"]
        assert final["incomplete_details"] == {"reason": "interrupted"} and final["output"] == []
        ws.send(json.dumps(create_event(input=[user("go on")], previous_response_id=response_id, store=False,
                                        max_output_tokens=16)))
        follow = until(ws, "response.incomplete")
        assert follow[0]["response"]["previous_response_id"] == response_id


def test_interrupt_of_an_unknown_response_fails_and_the_socket_stays_open(server: RunningServer) -> None:
    with connect(server.ws_url) as ws:
        ws.send(json.dumps({"type": "response.interrupt", "response_id": "resp_nope",
                            "mode": "discard_partial_items"}))
        failed = receive(ws)
        assert failed["type"] == "response.interrupt.failed" and failed["error"]["code"] == "response_not_found"
        ws.send(json.dumps(create_event(input="hi", store=False, max_output_tokens=16)))
        assert until(ws, "response.incomplete")[-1]["type"] == "response.incomplete"


def test_readme_steering_example_runs(server: RunningServer) -> None:
    """The README's steering example, as written there, against this server."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("<!-- steering-example -->", 2)[1].split("```python", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {"BASE_URL": server.base_url}
    block = textwrap.dedent(block)  # the block sits inside a list item
    exec(compile(block, "README steering example", "exec"), namespace)
    assert namespace["stopped"].incomplete_details.reason == "steered"
    assert namespace["successor"].previous_response_id == namespace["stopped"].id
