"""The Open Responses compliance suite's 17 checks (10 over HTTP, 7 over WebSocket) and the newer
revisions' `generate: false` warm-up check, as our own tests against a real tether.

Each test is named after the suite's check id and sends what the suite sends; it then asserts what
the suite asserts (the suite's response schema, via `check_response_resource`, and its semantic
checks), plus the SDK's strict parse of every event and response. The scripted backend answers: a
fresh conversation gets the script's first turn, one with an earlier assistant turn the second.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai.types.responses import ResponseOutputMessage
from websockets.sync.client import connect

from .open_responses_schema import check_response_resource, response_resource_problems
from .support import RunningServer, ScriptedServer, assert_error, post_sse, serve_script, validate_sse_event
from .ws_support import Event, assert_ws_error, collect, completed, create_event, output_text, user

MODEL = "tether-scripted"
TEXT_TURNS = [{"text": "Hello there, friend."}, {"text": "Your name is Alice."}]
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a location",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}},
        "required": ["location"],
    },
}
TOOL_TURNS = [{"tool_calls": [{"name": "get_weather", "arguments": {"location": "San Francisco, CA"}}]}]


def _png_data_url() -> str:
    """A 2x2 red PNG as a data URL, as the suite sends an inline image (no network needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode()


RED_PNG = _png_data_url()


SERVER = ScriptedServer(TEXT_TURNS)


@pytest.fixture(scope="module")
def tool_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve_script(tmp_path_factory.mktemp("open-responses-tools"), TOOL_TURNS) as running:
        yield running


def post(server: RunningServer, body: dict[str, Any], path: str = "/v1/responses") -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=30)


def create(server: RunningServer, body: dict[str, Any]) -> dict[str, Any]:
    """A non-streaming create that must succeed; its body passes the suite's schema."""
    reply = post(server, {"model": MODEL, **body})
    assert reply.status_code == 200, reply.text
    response: dict[str, Any] = reply.json()
    check_response_resource(response)
    return response


def assert_completed_with_output(response: dict[str, Any]) -> None:
    assert response["status"] == "completed", response
    assert response["output"], "Response has no output items"


def ws_turn(conn: Any, **body: Any) -> list[Event]:
    """One `response.create` on a raw socket (as the suite sends it) and its events, each validated."""
    conn.send(json.dumps(create_event(model=MODEL, **body)))
    return collect(conn)


def ws_completed(events: list[Event]) -> dict[str, Any]:
    response = completed(events)
    check_response_resource(response)
    return response


# -- the suite's schema, as our checker reads it -------------------------------------------------------


def test_the_schema_check_rejects_what_the_suite_rejects(server: RunningServer) -> None:
    good = create(server, {"input": "hi", "tools": [WEATHER_TOOL]})
    assert response_resource_problems(good) == []
    no_strict = {**good, "tools": [{key: value for key, value in WEATHER_TOOL.items()}]}
    assert response_resource_problems(no_strict) == ["tools[0].strict: required"]
    no_usage_details = {**good, "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}}
    assert "usage.input_tokens_details: required" in response_resource_problems(no_usage_details)


# -- HTTP ----------------------------------------------------------------------------------------------


def test_basic_response(server: RunningServer) -> None:
    response = create(server, {"input": [{"type": "message", "role": "user",
                                           "content": "Say hello in exactly 3 words."}]})
    assert_completed_with_output(response)
    assert output_text(response) == "Hello there, friend."


def test_assistant_phase(server: RunningServer) -> None:
    response = create(
        server,
        {"input": [
            {"type": "message", "role": "assistant", "phase": "commentary",
             "content": "I should answer with the saved number."},
            {"type": "message", "role": "assistant", "phase": "final_answer", "content": "The number is four."},
            {"type": "message", "role": "user", "content": "Repeat only the number."},
        ]},
    )
    assert_completed_with_output(response)


def test_response_output_phase_schema(server: RunningServer) -> None:
    """The suite checks its schema on a fixture with phased assistant output; here tether's own copy of
    phased assistant messages (as it stores and lists them) must parse as output messages with the phase."""
    phased = [
        {"type": "message", "role": "assistant", "phase": "commentary", "content": "I am checking the answer."},
        {"type": "message", "role": "assistant", "phase": "final_answer", "content": "The answer is four."},
    ]
    response = create(server, {"input": [*phased, {"type": "message", "role": "user", "content": "Again?"}]})
    listed = httpx.get(f"{server.base_url}/responses/{response['id']}/input_items", params={"order": "asc"},
                       timeout=30)
    assert listed.status_code == 200, listed.text
    messages = [ResponseOutputMessage.model_validate(item) for item in listed.json()["data"][:2]]
    assert [message.phase for message in messages] == ["commentary", "final_answer"]
    assert [message.content[0].text for message in messages if message.content[0].type == "output_text"] == [
        "I am checking the answer.", "The answer is four."]


def test_streaming_response(server: RunningServer) -> None:
    events = post_sse(server.url, {"model": MODEL, "input": [{"type": "message", "role": "user",
                                                               "content": "Count from 1 to 5."}]})
    assert events, "No streaming events received"
    assert events[-1]["type"] == "response.completed"
    final = events[-1]["response"]
    check_response_resource(final)
    assert final["status"] == "completed"


def test_system_prompt(server: RunningServer) -> None:
    response = create(server, {"input": [
        {"type": "message", "role": "system", "content": "You are a pirate. Always respond in pirate speak."},
        {"type": "message", "role": "user", "content": "Say hello."},
    ]})
    assert_completed_with_output(response)


def test_tool_calling(tool_server: RunningServer) -> None:
    response = create(tool_server, {
        "input": [{"type": "message", "role": "user", "content": "What's the weather like in San Francisco?"}],
        "tools": [WEATHER_TOOL],
    })
    assert response["output"], "Response has no output items"
    [call] = [item for item in response["output"] if item["type"] == "function_call"]
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"location": "San Francisco, CA"}
    # The tool had no `strict`: it is echoed with every field of a function tool, null where not given.
    assert response["tools"] == [{**WEATHER_TOOL, "strict": None}]


def test_tool_calling_echo_of_a_bare_function_tool(tool_server: RunningServer) -> None:
    bare = {"type": "function", "name": "get_weather"}
    response = create(tool_server, {"input": "weather?", "tools": [bare]})
    assert response["tools"] == [{"type": "function", "name": "get_weather", "description": None,
                                  "parameters": None, "strict": None}]
    strict = {**WEATHER_TOOL, "strict": True}
    assert create(tool_server, {"input": "weather?", "tools": [strict]})["tools"] == [strict]


def test_image_input(server: RunningServer) -> None:
    response = create(server, {"input": [{"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "What do you see in this image? Answer in one sentence."},
        {"type": "input_image", "image_url": RED_PNG},
    ]}]})
    assert_completed_with_output(response)


def test_multi_turn(server: RunningServer) -> None:
    response = create(server, {"input": [
        {"type": "message", "role": "user", "content": "My name is Alice."},
        {"type": "message", "role": "assistant", "content": "Hello Alice! Nice to meet you. How can I help you today?"},
        {"type": "message", "role": "user", "content": "What is my name?"},
    ]})
    assert_completed_with_output(response)
    assert output_text(response) == "Your name is Alice."  # the script's second turn: the history counted


COMPACT_INPUT = [
    {"type": "message", "role": "user", "content": [{"type": "input_text",
                                                     "text": "Remember the compaction code word: slate."}]},
    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "OK."}]},
    {"type": "message", "role": "user", "content": [{"type": "input_text",
                                                     "text": "Compress this conversation for later continuation."}]},
]


def test_compact_response(server: RunningServer) -> None:
    reply = post(server, {"model": MODEL, "prompt_cache_key": "openresponses-compact-test", "input": [
        {"type": "message", "role": "user", "content": "We agreed to launch on Tuesday and notify support first."},
        {"type": "message", "role": "assistant",
         "content": "Understood. The launch is Tuesday, with support notified beforehand."},
    ]}, path="/v1/responses/compact")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["object"] == "response.compaction"
    assert isinstance(body["id"], str) and isinstance(body["created_at"], int)
    assert body["output"] and any(item["type"] == "compaction" for item in body["output"])
    assert set(body["usage"]) >= {"input_tokens", "output_tokens", "total_tokens"}


def test_compact_missing_model(server: RunningServer) -> None:
    reply = post(server, {"input": [{"type": "message", "role": "user", "content": "Compact this conversation."}]},
                 path="/v1/responses/compact")
    assert_error(reply, 400, param="model")


def test_function_call_output_without_its_call_over_http(tool_server: RunningServer) -> None:
    first = create(tool_server, {"input": "weather?", "tools": [WEATHER_TOOL]})
    reply = post(tool_server, {"model": MODEL, "previous_response_id": first["id"], "tools": [WEATHER_TOOL],
                               "input": [{"type": "function_call_output", "call_id": "call_openresponses_missing",
                                          "output": "No matching tool call exists in the previous response."}]})
    error = assert_error(reply, 400, param="input", code=None)
    assert error["message"] == (
        "No tool call found for function call output with call_id call_openresponses_missing.")
    # The answer to the call the parent really made goes through.
    [call] = [item for item in first["output"] if item["type"] == "function_call"]
    answered = create(tool_server, {"previous_response_id": first["id"], "tools": [WEATHER_TOOL],
                                    "input": [{"type": "function_call_output", "call_id": call["call_id"],
                                               "output": "sunny"}]})
    assert answered["status"] == "completed"


def test_tool_output_checks_over_sse_and_for_custom_tools(tool_server: RunningServer) -> None:
    body = {"model": MODEL, "stream": True, "input": [
        {"type": "message", "role": "user", "content": "patch it"},
        {"type": "custom_tool_call_output", "call_id": "call_nowhere", "output": "applied"},
    ]}
    reply = post(tool_server, body)
    error = assert_error(reply, 400, param="input")
    assert error["message"] == "No tool call found for custom tool call output with call_id call_nowhere."
    # With its call earlier in the same input (a client replaying full history), it is accepted.
    replay = {**body, "input": [
        {"type": "message", "role": "user", "content": "patch it"},
        {"type": "custom_tool_call", "call_id": "call_here", "name": "apply_patch", "input": "*** Begin Patch"},
        {"type": "custom_tool_call_output", "call_id": "call_here", "output": "applied"},
    ]}
    events = post_sse(tool_server.url, replay)
    for event in events:
        validate_sse_event(event)
    assert events[-1]["type"] == "response.completed"


# -- WebSocket -----------------------------------------------------------------------------------------


def test_websocket_response(server: RunningServer) -> None:
    with connect(server.ws_url) as conn:
        events = ws_turn(conn, input=[{"type": "message", "role": "user", "content": "Count from 1 to 3."}])
    response = ws_completed(events)
    assert response["status"] == "completed" and response["output"]


def test_websocket_sequential_responses(server: RunningServer) -> None:
    with connect(server.ws_url) as conn:
        first = ws_completed(ws_turn(conn, store=False, input="Reply with exactly: first"))
        second = ws_completed(ws_turn(conn, store=False, input="Reply with exactly: second"))
    assert first["id"] != second["id"]
    assert first["status"] == second["status"] == "completed"


def test_websocket_continuation(server: RunningServer) -> None:
    with connect(server.ws_url) as conn:
        first = ws_completed(ws_turn(conn, store=False, input="Remember the code word: cobalt. Reply with OK."))
        second = ws_completed(ws_turn(conn, store=False, previous_response_id=first["id"],
                                      input="What is the code word? Reply with only the code word."))
    assert second["previous_response_id"] == first["id"]
    assert output_text(second) == "Your name is Alice."  # the second turn: the first one's context was used


def test_websocket_reconnect_store_false_recovery(server: RunningServer) -> None:
    with connect(server.ws_url) as conn:
        first = ws_completed(ws_turn(conn, store=False, input="Remember the code word: copper. Reply with OK."))
    with connect(server.ws_url) as conn:
        [error] = ws_turn(conn, store=False, previous_response_id=first["id"],
                          input="Try to continue after reconnect. Reply with exactly: reconnected")
        assert_ws_error(error, "previous_response_not_found", "previous_response_id")
        recovered = ws_completed(ws_turn(conn, store=False, input=[user(
            "The previous store:false chain could not continue after reconnect. Start a new response and reply "
            "with exactly: recovered")]))
    assert recovered["status"] == "completed" and recovered["previous_response_id"] is None


def test_websocket_previous_response_not_found(server: RunningServer) -> None:
    with connect(server.ws_url) as conn:
        [error] = ws_turn(conn, store=False, previous_response_id="resp_openresponses_missing_1764967971",
                          input="This should fail because the previous response is missing.")
    assert_ws_error(error, "previous_response_not_found", "previous_response_id")


def test_websocket_failed_continuation_evicts_cache(server: RunningServer) -> None:
    with connect(server.ws_url) as conn:
        first = ws_completed(ws_turn(conn, store=False, input="Remember the code word: ember. Reply with OK."))
        [failed] = ws_turn(conn, store=False, previous_response_id=first["id"], input=[
            {"type": "function_call_output", "call_id": "call_openresponses_missing",
             "output": "No matching tool call exists in the previous response."}])
        assert_ws_error(failed, None, "input")
        assert failed["error"]["message"] == (
            "No tool call found for function call output with call_id call_openresponses_missing.")
        # The failed same-lane continuation evicted its parent: store:false, so it is gone.
        [retry] = ws_turn(conn, store=False, previous_response_id=first["id"],
                          input="Try to continue after the failed turn. Reply with exactly: stale")
        assert_ws_error(retry, "previous_response_not_found", "previous_response_id")
        # The socket stays usable.
        assert ws_completed(ws_turn(conn, store=False, input="fresh start"))["status"] == "completed"


def test_websocket_compact_new_chain(server: RunningServer) -> None:
    reply = post(server, {"model": MODEL, "input": COMPACT_INPUT}, path="/v1/responses/compact")
    assert reply.status_code == 200, reply.text
    window = reply.json()["output"]
    with connect(server.ws_url) as conn:
        events = ws_turn(conn, store=False, tools=[], input=[
            *window,
            {"type": "message", "role": "user", "content": "Continue from here. Reply with exactly: compacted"},
        ])
    response = ws_completed(events)
    assert response["status"] == "completed" and response["previous_response_id"] is None
    # The compacted window brought the earlier assistant turn back: the script played its second turn.
    assert output_text(response) == "Your name is Alice."


def test_websocket_generate_false(server: RunningServer) -> None:
    """The newer suite revisions' warm-up check: `generate: false` answers with an empty completed
    response whose id a later create continues, also after an earlier generation on the socket."""
    with connect(server.ws_url) as conn:
        ws_completed(ws_turn(conn, store=False, input="an earlier generation on this socket"))
        events = ws_turn(conn, store=False, generate=False, input=[user("Remember the code word: slate.")])
        assert [event["type"] for event in events] == ["response.created", "response.completed"]
        warm = ws_completed(events)
        assert warm["output"] == [] and warm["id"].startswith("resp_")
        assert warm["usage"]["input_tokens"] > 0 and warm["usage"]["output_tokens"] == 0
        follow = ws_completed(ws_turn(conn, store=False, previous_response_id=warm["id"], input=[]))
    assert follow["previous_response_id"] == warm["id"]
    assert output_text(follow) == "Hello there, friend."  # the warm-up added context, not a model turn
