"""The embedded llama.cpp engine on the default model: text and forced tool calls, HTTP and WebSocket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from .llamacpp_support import (
    MODEL,
    TIME_TOOL,
    WEATHER_TOOL,
    cached,
    final_response,
    llama_server,
    sse_turn,
    ws_turn,
)
from .support import RunningServer, check_output_indices, check_sequence_numbers

pytestmark = pytest.mark.llamacpp


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with llama_server(tmp_path_factory.mktemp("llamacpp")) as running:
        yield running


def _check_call(item: dict[str, Any], name: str) -> None:
    assert item["type"] == "function_call" and item["name"] == name
    arguments = json.loads(item["arguments"])
    assert isinstance(arguments, dict)
    schema = WEATHER_TOOL["parameters"] if name == "get_weather" else TIME_TOOL["parameters"]
    assert set(schema["required"]) <= set(arguments)
    assert set(arguments) <= set(schema["properties"])
    for key, value in arguments.items():
        assert isinstance(value, str), key
    if "unit" in arguments:
        assert arguments["unit"] in ("celsius", "fahrenheit")


def test_models_lists_the_gguf(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    assert MODEL in [model.id for model in client.models.list()]


def test_http_text_answer(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    events = sse_turn(client, model="any-name", input="Say hello.", max_output_tokens=16, temperature=0)
    check_sequence_numbers(events)
    check_output_indices(events)
    response = final_response(events)
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text and response["output"][0]["content"][0]["text"] == text
    assert 0 < response["usage"]["output_tokens"] <= 16
    assert response["usage"]["input_tokens"] > 10
    plain = client.responses.create(model="any-name", input="Say hello.", max_output_tokens=16, temperature=0)
    assert plain.output_text == text  # greedy: the same answer, served from the prefix cache
    assert plain.usage is not None and plain.usage.input_tokens_details.cached_tokens > 0


def test_ws_text_answer(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect() as conn:
        events = ws_turn(conn, model=MODEL, input="Name a color.", max_output_tokens=16, temperature=0, store=False)
    response = final_response(events)
    assert response["output"][0]["type"] == "message"
    assert response["output"][0]["content"][0]["text"]


def test_http_forced_tool_call(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    events = sse_turn(
        client, model=MODEL, input="What is the weather in Paris?", tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice="required", max_output_tokens=64, temperature=0,
    )
    check_output_indices(events)
    response = final_response(events)
    assert response["status"] == "completed"
    calls = [item for item in response["output"] if item["type"] == "function_call"]
    assert len(calls) == 1
    _check_call(calls[0], calls[0]["name"])


def test_ws_named_tool_call(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect() as conn:
        events = ws_turn(
            conn, model=MODEL, input="What time is it in Tokyo?", tools=[WEATHER_TOOL, TIME_TOOL],
            tool_choice={"type": "function", "name": "get_time"}, max_output_tokens=64, temperature=0, store=False,
        )
        response = final_response(events)
        assert response["status"] == "completed"
        call = response["output"][-1]
        _check_call(call, "get_time")
        # the loop goes on: the tool's result in, an answer out, the call's turn reused from the lane's slot
        events = ws_turn(
            conn, model=MODEL, previous_response_id=response["id"], tools=[WEATHER_TOOL, TIME_TOOL],
            input=[{"type": "function_call_output", "call_id": call["call_id"], "output": "10:42"}],
            tool_choice="auto", max_output_tokens=16, temperature=0, store=False,
        )
        follow = final_response(events)
        assert follow["output"]
        assert cached(follow) >= response["usage"]["input_tokens"] + response["usage"]["output_tokens"] - 2


def test_json_schema_output(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    schema = {"type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"],
              "additionalProperties": False}
    response = client.responses.create(
        model=MODEL, input="Name a color, as JSON.", max_output_tokens=32, temperature=0,
        text={"format": {"type": "json_schema", "name": "color", "schema": schema, "strict": True}},
    )
    assert response.status == "completed"
    assert set(json.loads(response.output_text)) == {"color"}


def test_count_input_tokens(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    counted = client.responses.input_tokens.count(model=MODEL, input="Say hello.")
    answered = client.responses.create(model=MODEL, input="Say hello.", max_output_tokens=16, temperature=0)
    assert answered.usage is not None and counted.input_tokens == answered.usage.input_tokens


def test_client_gone_frees_the_engine(server: RunningServer, tmp_path: Path) -> None:
    import httpx

    def counters() -> dict[str, int]:
        engine = httpx.get(server.url + "/health", timeout=10).json()["engine"]
        return {"cancelled": int(engine.get("cancelled", 0)), "generated": int(engine.get("generated_tokens", 0))}

    before = counters()
    body = {"model": MODEL, "input": "Count from 1 to 500, one number per line.", "stream": True,
            "max_output_tokens": 3000, "temperature": 0}
    with httpx.Client(timeout=60) as http, http.stream("POST", server.base_url + "/responses", json=body) as stream:
        for line in stream.iter_lines():
            if "output_text.delta" in line:
                break
    client = OpenAI(base_url=server.base_url, api_key="unused")
    answer = client.responses.create(model=MODEL, input="Say hi.", max_output_tokens=16, temperature=0)
    assert answer.status in ("completed", "incomplete")
    after = counters()
    # The abandoned turn was cancelled, not run to its 3,000 tokens ahead of (or beside) the next one.
    assert after["cancelled"] >= before["cancelled"] + 1
    assert after["generated"] - before["generated"] < 1000


def test_health_reports_engine_counters(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    client.responses.create(model=MODEL, input="Hi", max_output_tokens=16, temperature=0)
    engine = httpx.get(server.url + "/health", timeout=10).json()["engine"]
    assert engine["model"].endswith(".gguf")
    assert engine["turns"] >= 1 and engine["prompt_tokens"] > 0
