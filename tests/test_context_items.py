"""`additional_tools` and `configuration_update` input items, and the "Responses Lite" request shape
Codex sends (instructions as a developer message, tools in an `additional_tools` item), against a real
tether: the scripted backend over HTTP, SSE and WebSocket, and the upstream backend, whose requests
(tests/fake_upstream.py) show exactly what the model is given."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from .fake_upstream import FakeUpstream, text_reply, tool_reply
from .support import (
    RunningServer,
    ScriptedServer,
    assert_error,
    check_output_indices,
    check_sequence_numbers,
    post_sse,
    running_server,
    validate_response,
)
from .ws_support import collect, completed, create_event, output_text, user

INSTRUCTIONS = "You are a coding agent. Use the tools."
RUN = {"type": "function", "name": "run", "description": "Run a shell command.",
       "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
       "strict": False}
APPLY = {"type": "custom", "name": "apply_patch", "description": "Apply a patch (free text)."}
SCHEMA = {"type": "json_schema", "name": "answer",
          "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}}
SCRIPT = [
    {"tool_calls": [{"name": "run", "arguments": {"cmd": "ls"}}]},
    {"tool_calls": [{"name": "apply_patch", "arguments": "*** Begin Patch\n*** End Patch\n"}]},
    {"text": "All done."},
]


def classic(**body: Any) -> dict[str, Any]:
    return {"model": "m", "instructions": INSTRUCTIONS, "tools": [RUN], **body}


def lite(**body: Any) -> dict[str, Any]:
    """The Lite shape: Codex sends no top-level instructions or tools."""
    return {"model": "m", "parallel_tool_calls": False, "reasoning": {"effort": "medium", "context": "all_turns"},
            **body}


LITE_PREAMBLE = [
    {"type": "additional_tools", "role": "developer", "tools": [RUN]},
    {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": INSTRUCTIONS}]},
]


SERVER = ScriptedServer(SCRIPT)


def post(server: RunningServer, body: dict[str, Any]) -> dict[str, Any]:
    reply = httpx.post(server.url + "/v1/responses", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    response: dict[str, Any] = reply.json()
    validate_response(response)
    return response


def usage_of(response: dict[str, Any]) -> tuple[int, int]:
    return response["usage"]["input_tokens"], response["usage"]["input_tokens_details"]["cached_tokens"]


def test_the_lite_shape_plays_like_the_classic_shape_over_http(server: RunningServer) -> None:
    """Same prompt (the scripted engine's token counts and prefix matches), same answers, both turns."""
    first_classic = post(server, classic(parallel_tool_calls=False, input="list the files"))
    first_lite = post(server, lite(input=[*LITE_PREAMBLE, user("list the files")]))
    for first in (first_classic, first_lite):
        [call] = first["output"]
        assert call["type"] == "function_call" and call["name"] == "run" and call["arguments"] == '{"cmd":"ls"}'
    assert usage_of(first_lite)[0] == usage_of(first_classic)[0]
    # The Lite conversation's prompt is the classic one: the engine's prefix cache has it already.
    assert usage_of(first_lite)[1] == usage_of(first_classic)[0]
    # The echo is the request as sent: Lite's tools are in its input, not in `tools`.
    assert first_lite["tools"] == [] and first_lite["instructions"] is None

    def result(first: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"type": "function_call_output", "call_id": first["output"][0]["call_id"], "output": "a.txt"}]

    second_classic = post(server, classic(previous_response_id=first_classic["id"], input=result(first_classic)))
    second_lite = post(server, lite(previous_response_id=first_lite["id"], input=result(first_lite)))
    assert usage_of(second_lite)[0] == usage_of(second_classic)[0]
    for second in (second_classic, second_lite):
        [call] = second["output"]
        # `apply_patch` is offered to neither: the scripted model calls it anyway, as a function call.
        assert call["type"] == "function_call" and call["name"] == "apply_patch"


def test_tools_added_mid_conversation_are_offered_without_reprefill_over_ws(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect() as conn:
        # Stored, so that the last turn below can branch from it once it is no longer the lane's latest.
        conn.send(create_event(**lite(input=[*LITE_PREAMBLE, user("list the files")], store=True)))
        first = completed(collect(conn))
        before_prompt = first["usage"]["input_tokens"]
        added = {"type": "additional_tools", "role": "developer", "tools": [APPLY]}
        outputs = [{"type": "function_call_output", "call_id": first["output"][0]["call_id"], "output": "a.txt"}]
        conn.send(create_event(**lite(input=[*outputs, added], previous_response_id=first["id"], store=False)))
        events = collect(conn)
        second = completed(events)
        check_sequence_numbers(events)
        check_output_indices(events)
        # The tool the item added is offered: the model's call to it is a custom tool call.
        [call] = second["output"]
        assert call["type"] == "custom_tool_call" and call["input"] == "*** Begin Patch\n*** End Patch\n"
        cached = usage_of(second)[1]
        # Everything before the new items was reused (the first prompt and its answer): no re-prefill.
        assert cached > before_prompt
        assert second["prompt_cache_diagnostics"] == {"type": "cache_hit"}
        # The same tool added top-level instead rewrites the preamble: the prompt starts over.
        conn.send(create_event(**lite(input=outputs, tools=[APPLY], previous_response_id=first["id"], store=False)))
        rewritten = completed(collect(conn))
        assert rewritten["prompt_cache_diagnostics"]["reason"] == "tools_changed"
        assert usage_of(rewritten)[1] < cached


def test_lite_over_sse_streams_strictly(server: RunningServer) -> None:
    events = post_sse(server.url, lite(input=[*LITE_PREAMBLE, user("list the files")]))
    check_sequence_numbers(events)
    check_output_indices(events)
    final = events[-1]["response"]
    assert final["output"][0]["name"] == "run"
    assert events[0]["response"]["prompt_cache_diagnostics"] is None  # known once the usage is
    assert final["prompt_cache_diagnostics"] == {"type": "unavailable"}  # a new conversation


@pytest.mark.parametrize(
    ("item", "param"),
    [
        ({"type": "additional_tools", "role": "system", "tools": []}, "input[0].role"),
        ({"type": "additional_tools", "role": "developer", "tools": {"run": RUN}}, "input[0].tools"),
        ({"type": "additional_tools", "role": "developer", "tools": [{"type": "function", "name": "a b"}]},
         "input[0].tools[0].name"),
        ({"type": "configuration_update", "reasoning": {"effort": "extreme"}}, "input[0].reasoning.effort"),
        ({"type": "configuration_update", "text": {"format": {"type": "yaml"}}}, "input[0].text.format.type"),
    ],
)
def test_bad_context_items_are_400_with_their_param(server: RunningServer, item: dict[str, Any], param: str) -> None:
    reply = httpx.post(server.url + "/v1/responses", json={"model": "m", "input": [item]}, timeout=30)
    assert_error(reply, 400, param=param)


def test_a_tool_choice_may_name_a_tool_of_an_additional_tools_item(server: RunningServer) -> None:
    body = lite(input=[*LITE_PREAMBLE, user("x")], tool_choice={"type": "function", "name": "run"})
    assert post(server, body)["output"][0]["name"] == "run"
    unknown = lite(input=[user("x")], tool_choice={"type": "function", "name": "run"})
    assert_error(httpx.post(server.url + "/v1/responses", json=unknown, timeout=30), 400, param="tool_choice")
    # A continuation whose context added no tool cannot require one either.
    first = post(server, {"model": "m", "input": "hello"})
    required = {"model": "m", "input": "more", "previous_response_id": first["id"], "tool_choice": "required"}
    assert_error(httpx.post(server.url + "/v1/responses", json=required, timeout=30), 400, param="tool_choice")


def test_input_items_list_the_new_items_with_ids(server: RunningServer) -> None:
    update = {"type": "configuration_update", "reasoning": {"effort": "low"}}
    response = post(server, lite(input=[*LITE_PREAMBLE, update, user("list the files")]))
    listed = httpx.get(f"{server.url}/v1/responses/{response['id']}/input_items?order=asc", timeout=30).json()
    kinds = [item["type"] for item in listed["data"]]
    assert kinds == ["additional_tools", "message", "configuration_update", "message"]
    assert all(item["id"] for item in listed["data"])
    assert listed["data"][0]["tools"] == [RUN] and listed["data"][2]["reasoning"] == {"effort": "low"}


# -- the upstream backend: what the model is sent -------------------------------------------------------


@pytest.fixture(scope="module")
def upstream_server(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("context-items-upstream")
    with running_server(tmp, "--backend", "upstream", "--upstream-url", fake.url, "--store", "memory") as running:
        yield running


@pytest.fixture
def upstream(fake: FakeUpstream, upstream_server: RunningServer) -> FakeUpstream:
    fake.reset()
    return fake


def test_lite_and_classic_send_the_upstream_the_same_request(upstream: FakeUpstream,
                                                             upstream_server: RunningServer) -> None:
    upstream.script(tool_reply([("run", '{"cmd":"ls"}')]), tool_reply([("run", '{"cmd":"ls"}')]),
                    text_reply("ok"), text_reply("ok"))
    first_classic = post(upstream_server, classic(parallel_tool_calls=False, input="list the files"))
    first_lite = post(upstream_server, lite(input=[*LITE_PREAMBLE, user("list the files")]))
    outputs = [{"type": "function_call_output", "call_id": "chatcmpl-tool-0", "output": "a.txt"}]
    post(upstream_server, classic(parallel_tool_calls=False, previous_response_id=first_classic["id"], input=outputs))
    post(upstream_server, lite(previous_response_id=first_lite["id"], input=outputs))
    sent = [request.body for request in upstream.requests]
    model_visible = [{key: body.get(key) for key in ("messages", "tools", "tool_choice", "parallel_tool_calls")}
                     for body in sent]
    assert model_visible[0] == model_visible[1]
    assert model_visible[2] == model_visible[3]
    assert model_visible[0]["messages"] == [{"role": "system", "content": INSTRUCTIONS},
                                            {"role": "user", "content": "list the files"}]
    assert [tool["function"]["name"] for tool in model_visible[0]["tools"]] == ["run"]


def test_an_added_tool_keeps_the_upstream_messages_before_it(upstream: FakeUpstream,
                                                             upstream_server: RunningServer) -> None:
    upstream.script(text_reply("Ready."), tool_reply([("apply_patch", '{"input":"*** Begin Patch"}')]))
    first = post(upstream_server, classic(input="hello"))
    added = {"type": "additional_tools", "role": "developer", "tools": [APPLY]}
    second = post(upstream_server, classic(previous_response_id=first["id"], input=[added, user("patch it")]))
    [call] = second["output"]
    assert call["type"] == "custom_tool_call" and call["input"] == "*** Begin Patch"
    before, after = (request.body for request in upstream.requests)
    assert after["messages"][: len(before["messages"])] == before["messages"]
    note, asked = after["messages"][len(before["messages"]) + 1:]
    assert note["role"] == "system" and '"name":"apply_patch"' in note["content"]
    assert asked == {"role": "user", "content": "patch it"}
    assert [tool["function"]["name"] for tool in after["tools"]] == ["run", "apply_patch"]


def test_a_configuration_update_sets_the_format_from_its_position(upstream: FakeUpstream,
                                                                  upstream_server: RunningServer) -> None:
    upstream.script(text_reply("plain"), text_reply('{"ok": true}'), text_reply('{"ok": true}'), text_reply("again"))
    first = post(upstream_server, {"model": "m", "input": "hi"})
    to_json = {"type": "configuration_update", "text": {"format": SCHEMA}, "reasoning": {"effort": "high"}}
    second = post(upstream_server, {"model": "m", "previous_response_id": first["id"],
                                    "input": [to_json, user("json")]})
    # Until a later update replaces it: the next turn, with no update of its own, keeps the schema.
    third = post(upstream_server, {"model": "m", "previous_response_id": second["id"], "input": "still json"})
    to_text = {"type": "configuration_update", "text": {"format": {"type": "text"}}}
    post(upstream_server, {"model": "m", "previous_response_id": third["id"], "input": [to_text, user("plain")]})
    formats = [request.body.get("response_format") for request in upstream.requests]
    assert formats[0] is None and formats[3] is None
    assert formats[1] == formats[2] == {"type": "json_schema",
                                        "json_schema": {"name": "response", "schema": SCHEMA["schema"]}}
    # The prompt itself is untouched by the update: the messages only grow.
    first_messages, second_messages = (upstream.requests[i].body["messages"] for i in (0, 1))
    assert second_messages[: len(first_messages)] == first_messages
    # The echo is the request as sent, and the prompt's prefix is the same: a cache hit.
    assert second["text"]["format"] == {"type": "text"} and second["prompt_cache_diagnostics"] == {"type": "cache_hit"}
    assert output_text(third) == '{"ok": true}'


def test_a_configuration_update_over_websocket(upstream: FakeUpstream, upstream_server: RunningServer) -> None:
    upstream.script(text_reply("plain"), text_reply('{"ok": true}'))
    client = OpenAI(base_url=upstream_server.base_url, api_key="unused", max_retries=0)
    with client.responses.connect() as conn:
        conn.response.create(model="m", input="hi", store=False)
        first = completed(collect(conn))
        update = {"type": "configuration_update", "text": {"format": SCHEMA}}
        conn.send(create_event(input=[update, user("json")], previous_response_id=first["id"], store=False))
        second = completed(collect(conn))
    assert output_text(second) == '{"ok": true}'
    assert [request.body.get("response_format") is not None for request in upstream.requests] == [False, True]
    assert second["prompt_cache_diagnostics"] == {"type": "cache_hit"}
