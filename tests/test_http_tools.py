"""Tools over HTTP: function, custom (free-text input), hosted tools accepted but never offered, function
and custom tools inside a `namespace`, `tool_choice` validation and `parallel_tool_calls: false`."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from openai import BadRequestError, OpenAI

from .support import (
    RunningServer,
    ScriptedServer,
    check_output_indices,
    check_sequence_numbers,
    collapse,
    post_sse,
)

PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hello\n*** End Patch\n"
TURNS = [
    {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}},
                    {"name": "apply_patch", "arguments": PATCH},
                    {"name": "lookup", "arguments": {"customer": 7}}]},
]
OBJECT = {"type": "object", "properties": {}}
GET_WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city", "parameters": OBJECT}
LOOKUP = {"type": "function", "name": "lookup", "parameters": OBJECT}
APPLY_PATCH_CUSTOM = {"type": "custom", "name": "apply_patch", "description": "Apply a patch",
                      "format": {"type": "text"}}
APPLY_PATCH_FUNCTION = {"type": "function", "name": "apply_patch", "parameters": OBJECT}


SERVER = ScriptedServer(TURNS)


def test_function_tools(client: OpenAI) -> None:
    tools: list[Any] = [GET_WEATHER, APPLY_PATCH_FUNCTION, LOOKUP]
    response = client.responses.create(model="m", input="go", tools=tools)
    assert [item.type for item in response.output] == ["function_call"] * 3
    weather = response.output[0]
    assert weather.type == "function_call"
    assert weather.name == "get_weather" and json.loads(weather.arguments) == {"city": "Paris"}
    assert weather.status == "completed" and weather.id and weather.id.startswith("fc_")
    # Echoed as given, with every field of a function tool: null where the request had none.
    filled = [{"description": None, "parameters": None, "strict": None, **tool} for tool in tools]
    assert response.to_dict()["tools"] == filled


def test_custom_tool_call_has_input(client: OpenAI) -> None:
    response = client.responses.create(model="m", input="go", tools=[GET_WEATHER, APPLY_PATCH_CUSTOM, LOOKUP])
    call = response.output[1]
    assert call.type == "custom_tool_call"
    assert call.name == "apply_patch" and call.input == PATCH and call.call_id.startswith("call_")
    assert call.id and call.id.startswith("ctc_")
    assert response.output[0].type == "function_call"


def test_custom_tool_call_stream(server: RunningServer) -> None:
    events = post_sse(server.url, {"model": "m", "input": "go", "tools": [APPLY_PATCH_CUSTOM]})
    check_sequence_numbers(events)
    check_output_indices(events)
    types = collapse([e["type"] for e in events])
    custom = ["response.output_item.added", "response.custom_tool_call_input.delta",
              "response.custom_tool_call_input.done", "response.output_item.done"]
    assert types[6:10] == custom  # the second scripted call
    done = next(e for e in events if e["type"] == "response.custom_tool_call_input.done")
    assert done["input"] == PATCH
    deltas = [e["delta"] for e in events if e["type"] == "response.custom_tool_call_input.delta"]
    assert "".join(deltas) == PATCH


def test_hosted_tool_is_accepted_but_not_offered(client: OpenAI) -> None:
    response = client.responses.create(model="m", input="go", tools=[GET_WEATHER, {"type": "web_search"}])
    assert response.status == "completed"
    assert [tool.type for tool in response.tools] == ["function", "web_search"]
    with_search = client.responses.input_tokens.count(
        model="m", input="go", tools=[GET_WEATHER, {"type": "web_search"}]
    )
    without = client.responses.input_tokens.count(model="m", input="go", tools=[GET_WEATHER])
    assert with_search.input_tokens == without.input_tokens  # the model never saw web_search


def test_function_in_namespace_gets_namespace(client: OpenAI) -> None:
    namespace = {"type": "namespace", "name": "crm", "description": "Customer records", "tools": [LOOKUP]}
    response = client.responses.create(model="m", input="go", tools=[GET_WEATHER, namespace])
    call = response.output[2]
    assert call.type == "function_call" and call.name == "lookup" and call.namespace == "crm"
    assert json.loads(call.arguments) == {"customer": 7}
    assert response.output[0].type == "function_call" and response.output[0].namespace is None
    without = client.responses.input_tokens.count(model="m", input="go", tools=[GET_WEATHER])
    with_ns = client.responses.input_tokens.count(model="m", input="go", tools=[GET_WEATHER, namespace])
    assert with_ns.input_tokens > without.input_tokens  # the namespaced tool is offered


def test_custom_tool_in_namespace_gets_namespace(client: OpenAI) -> None:
    namespace = {"type": "namespace", "name": "editor", "description": "Edits", "tools": [APPLY_PATCH_CUSTOM]}
    response = client.responses.create(model="m", input="go", tools=[namespace])
    call = response.output[1]
    assert call.type == "custom_tool_call" and call.input == PATCH and call.namespace == "editor"


def test_tool_choice_naming_an_unknown_tool_is_400(server: RunningServer, client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as caught:
        client.responses.create(model="m", input="go", tools=[GET_WEATHER],
                                tool_choice={"type": "function", "name": "nope"})
    assert caught.value.status_code == 400 and caught.value.param == "tool_choice"
    raw = httpx.post(server.base_url + "/responses", json={"model": "m", "input": "go", "tool_choice": "sometimes"})
    assert raw.status_code == 400 and raw.json()["error"]["param"] == "tool_choice"


def test_tool_choice_echoed(client: OpenAI) -> None:
    choice = {"type": "function", "name": "get_weather"}
    response = client.responses.create(model="m", input="go", tools=[GET_WEATHER], tool_choice=choice)
    assert response.to_dict()["tool_choice"] == choice
    required = client.responses.create(model="m", input="go", tools=[GET_WEATHER], tool_choice="required")
    assert required.tool_choice == "required"


def test_parallel_tool_calls_false_keeps_one_call(server: RunningServer, client: OpenAI) -> None:
    tools: list[Any] = [GET_WEATHER, APPLY_PATCH_FUNCTION, LOOKUP]
    response = client.responses.create(model="m", input="go", tools=tools, parallel_tool_calls=False)
    assert response.parallel_tool_calls is False
    [call] = response.output
    assert call.type == "function_call" and call.name == "get_weather"
    events = post_sse(server.url, {"model": "m", "input": "go", "tools": tools, "parallel_tool_calls": False})
    check_output_indices(events)
    assert sum(e["type"] == "response.output_item.added" for e in events) == 1
