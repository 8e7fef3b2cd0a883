"""The OpenAI Agents SDK (`openai-agents`) over WebSocket mode: `OpenAIResponsesWSModel` runs an agent with a
function tool against tether, through the SDK's own `responses_websocket_session`.

The scripted model first calls `get_weather`, the SDK runs the tool and sends its output back, the model
answers. Once the SDK resends the whole history each turn (its default), once it chains with
`previous_response_id` (only the tool output travels). Every raw event the SDK parsed is also checked
against the Python SDK's WebSocket event types, field by field.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from agents import Agent, RawResponsesStreamEvent, function_tool, responses_websocket_session, set_tracing_disabled
from agents.models.openai_responses import OpenAIResponsesWSModel

from .support import RunningServer, ScriptedServer, validate_ws_event
from .ws_support import metric

API_KEY = "sk-tether-agents"
ANSWER = "It is sunny in Paris."
TURNS = [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}, {"text": ANSWER}]


@pytest.fixture(scope="module", autouse=True)
def no_trace_export() -> Iterator[None]:
    """The SDK exports traces to OpenAI by default: nothing of a test may leave the machine."""
    set_tracing_disabled(True)
    yield
    set_tracing_disabled(False)


SERVER = ScriptedServer(TURNS, "--api-key", API_KEY)


def weather_agent(calls: list[str]) -> Agent[Any]:
    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    return Agent(name="weather", instructions="Answer with the weather.", model="tether-scripted",
                 tools=[get_weather])


async def run_agent(server: RunningServer, **run_options: Any) -> tuple[Any, list[dict[str, Any]], list[str]]:
    calls: list[str] = []
    events: list[dict[str, Any]] = []
    async with responses_websocket_session(api_key=API_KEY, base_url=server.base_url) as session:
        model = session.provider.get_model("tether-scripted")
        assert isinstance(model, OpenAIResponsesWSModel)
        result = session.run_streamed(weather_agent(calls), "What is the weather in Paris?", **run_options)
        async for event in result.stream_events():
            if isinstance(event, RawResponsesStreamEvent):
                events.append(event.data.to_dict())
    return result, events, calls


def check_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every event is a strict WebSocket event; returns the two responses, in order."""
    for event in events:
        validate_ws_event(event)
    responses = [event["response"] for event in events if event["type"] == "response.completed"]
    assert len(responses) == 2, [event["type"] for event in events]
    assert [item["type"] for item in responses[0]["output"]] == ["function_call"]
    assert responses[1]["output"][-1]["content"][0]["text"] == ANSWER
    return responses


async def test_agent_runs_a_function_tool_over_websocket_mode(server: RunningServer) -> None:
    ws_before = metric(server, "tether_responses_total", api_key=API_KEY, transport="ws")
    result, events, calls = await run_agent(server)
    assert calls == ["Paris"]
    assert result.final_output == ANSWER
    first, second = check_events(events)
    assert first["tools"][0]["name"] == "get_weather" and first["tools"][0]["strict"] is True
    # The default: each turn resends the history, so the tool output comes with its call.
    assert second["previous_response_id"] is None
    assert metric(server, "tether_responses_total", api_key=API_KEY, transport="ws") == ws_before + 2
    assert metric(server, "tether_responses_total", api_key=API_KEY, transport="http") == 0


async def test_agent_chains_with_previous_response_id(server: RunningServer) -> None:
    hits_before = metric(server, "tether_ws_cache_hits_total", api_key=API_KEY)
    result, events, calls = await run_agent(server, auto_previous_response_id=True)
    assert calls == ["Paris"]
    assert result.final_output == ANSWER
    first, second = check_events(events)
    # Chained: the second turn named the first and sent only the tool output; the socket's cache had it.
    assert second["previous_response_id"] == first["id"]
    assert metric(server, "tether_ws_cache_hits_total", api_key=API_KEY) == hits_before + 1
