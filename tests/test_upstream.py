"""The upstream backend against a real loopback chat-completions server (tests/fake_upstream.py), driven
through tether with the official openai SDK over HTTP, SSE and WebSocket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tether.api.items import normalize_input
from tether.api.tools import validate_tools
from tether.backends.base import BackendError, Finished, GenerationParams, TextDelta, ToolCallDelta
from tether.backends.chat_render import render_items
from tether.backends.upstream import UpstreamBackend, api_base
from tether.backends.upstream_http import Timeouts

from .fake_upstream import MODEL, FakeUpstream, Reply, chunk, error_reply, text_reply, tool_reply, usage
from .support import (
    TEXT_SEQUENCE,
    RunningServer,
    collapse,
    free_port,
    running_server,
)
from .upstream_support import metric, sse_events, ws_turn

WEATHER_TOOLS: list[dict[str, Any]] = [
    {"type": "function", "name": "get_weather", "description": "Weather of a city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    {"type": "function", "name": "get_time",
     "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}},
]
PATCH = '*** Begin Patch\n*** Add File: a.txt\n+hello "world"\\n\t\u00e9\n*** End Patch\n'


@pytest.fixture(scope="module")
def server(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # The URL without `/v1`: tether adds it.
    tmp = tmp_path_factory.mktemp("upstream")
    with running_server(tmp, "--backend", "upstream", "--upstream-url", fake.url) as running:
        yield running


@pytest.fixture
def upstream(fake: FakeUpstream, server: RunningServer) -> FakeUpstream:
    fake.reset()
    return fake


@pytest.fixture
def client(server: RunningServer) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


ITEMS_HANDED_WS = 'tether_backend_items_handed_total{transport="ws"}'


def assistant_calls(*calls: tuple[str, str, str], content: str | None = None) -> dict[str, Any]:
    return {"role": "assistant", "content": content, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        for call_id, name, arguments in calls
    ]}


# -- text ----------------------------------------------------------------------------------------
def test_text_json_request_mapping_and_usage(upstream: FakeUpstream, client: OpenAI) -> None:
    upstream.script(text_reply("Hello from upstream!", use=usage(12, 6, cached=8)))
    response = client.responses.create(model="client-model", input="Hi", instructions="Be brief.",
                                       temperature=0.5, top_p=0.9, max_output_tokens=100)
    assert response.status == "completed"
    assert response.output_text == "Hello from upstream!"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 6)
    assert response.usage.input_tokens_details.cached_tokens == 8
    [received] = upstream.requests
    assert received.path == "/v1/chat/completions"
    body = received.body
    assert body["model"] == "client-model"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (100, 0.5, 0.9)
    assert "tools" not in body and "tool_choice" not in body and "response_format" not in body


def test_text_sse_events(upstream: FakeUpstream, client: OpenAI) -> None:
    text = "Streaming, piece by piece."
    upstream.script(text_reply(text, size=3, use=usage(9, 7)))
    events = sse_events(client, model="m", input="Say something")
    assert collapse([e["type"] for e in events]) == TEXT_SEQUENCE
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == text
    assert sum(e["type"] == "response.output_text.delta" for e in events) == len(range(0, len(text), 3))
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == text
    # The upstream reported no cached tokens: tether says 0, not a guess.
    assert final["usage"]["input_tokens"] == 9
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == 0
    assert "instructions" not in upstream.requests[0].body and upstream.requests[0].messages[0]["role"] == "user"


def test_json_schema_becomes_response_format(upstream: FakeUpstream, client: OpenAI) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    upstream.script(text_reply('{"n": 3}'))
    response = client.responses.create(
        model="m", input="Count", text={"format": {"type": "json_schema", "name": "count", "schema": schema}}
    )
    assert json.loads(response.output_text) == {"n": 3}
    assert upstream.requests[0].body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "response", "schema": schema}
    }


def test_max_output_tokens_length_is_incomplete(upstream: FakeUpstream, client: OpenAI) -> None:
    upstream.script(text_reply("An answer that was cut", finish="length", use=usage(5, 16)))
    response = client.responses.create(model="m", input="Talk", max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "An answer that was cut"
    assert response.usage is not None and response.usage.output_tokens == 16
    assert upstream.requests[0].body["max_tokens"] == 16


def test_models_listed_from_upstream(server: RunningServer, client: OpenAI) -> None:
    assert [model.id for model in client.models.list()] == [MODEL]


# -- tool calls ----------------------------------------------------------------------------------
def test_tool_calls_round_trip_with_previous_response_id(upstream: FakeUpstream, client: OpenAI) -> None:
    upstream.script(
        tool_reply([("get_weather", '{"city": "Paris"}'), ("get_time", '{"tz": "CET"}')], size=4, text="Let me check."),
        text_reply("Sunny, noon."),
    )
    events = sse_events(client, model="m", input="Weather and time?", tools=WEATHER_TOOLS)
    message = TEXT_SEQUENCE[2:-1]
    call = ["response.output_item.added", "response.function_call_arguments.delta",
            "response.function_call_arguments.done", "response.output_item.done"]
    assert collapse([e["type"] for e in events]) == [*TEXT_SEQUENCE[:2], *message, *call, *call, "response.completed"]
    first = events[-1]["response"]
    calls = [item for item in first["output"] if item["type"] == "function_call"]
    assert [(c["name"], c["arguments"], c["call_id"]) for c in calls] == [
        ("get_weather", '{"city": "Paris"}', "chatcmpl-tool-0"), ("get_time", '{"tz": "CET"}', "chatcmpl-tool-1")
    ]
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert len(deltas) > 2 and "".join(deltas) == '{"city": "Paris"}{"tz": "CET"}'
    body = upstream.requests[0].body
    assert body["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                          "parameters": WEATHER_TOOLS[0]["parameters"]}},
        {"type": "function", "function": {"name": "get_time", "parameters": WEATHER_TOOLS[1]["parameters"]}},
    ]
    assert body["tool_choice"] == "auto" and body["parallel_tool_calls"] is True

    second = client.responses.create(
        model="m", previous_response_id=first["id"], tools=WEATHER_TOOLS,
        input=[{"type": "function_call_output", "call_id": "chatcmpl-tool-0", "output": "sunny"},
               {"type": "function_call_output", "call_id": "chatcmpl-tool-1", "output": "12:00"}],
    )
    assert second.status == "completed" and second.output_text == "Sunny, noon."
    assert upstream.requests[1].messages == [
        {"role": "user", "content": "Weather and time?"},
        assistant_calls(("chatcmpl-tool-0", "get_weather", '{"city": "Paris"}'),
                        ("chatcmpl-tool-1", "get_time", '{"tz": "CET"}'), content="Let me check."),
        {"role": "tool", "tool_call_id": "chatcmpl-tool-0", "content": "sunny"},
        {"role": "tool", "tool_call_id": "chatcmpl-tool-1", "content": "12:00"},
    ]


def test_ws_continuation_sends_history_but_renders_only_new_items(
    upstream: FakeUpstream, client: OpenAI, server: RunningServer
) -> None:
    upstream.script(tool_reply([("get_weather", '{"city": "Rome"}')]), text_reply("Warm in Rome."), text_reply("Bye."))
    with client.responses.connect() as conn:
        before = metric(server, ITEMS_HANDED_WS)
        first = ws_turn(conn, model="m", instructions="sys one", tools=WEATHER_TOOLS,
                        input=[{"role": "user", "content": "Weather in Rome?"}])
        assert first[-1].type == "response.completed"
        assert metric(server, ITEMS_HANDED_WS) == before + 1
        call = first[-1].response.output[0]
        assert call.type == "function_call" and call.call_id == "chatcmpl-tool-0"

        second = ws_turn(conn, model="m", instructions="sys one", tools=WEATHER_TOOLS,
                         previous_response_id=first[-1].response.id,
                         input=[{"type": "function_call_output", "call_id": call.call_id, "output": "warm"}])
        assert second[-1].type == "response.completed"
        assert second[-1].response.output_text == "Warm in Rome."
        assert metric(server, ITEMS_HANDED_WS) == before + 2  # only the one new item was handed over

        # New instructions: only the system message changes; the history is the session's own.
        third = ws_turn(conn, model="m", instructions="sys two", previous_response_id=second[-1].response.id,
                        input=[{"role": "user", "content": "Thanks"}])
        assert third[-1].type == "response.completed"
        assert metric(server, ITEMS_HANDED_WS) == before + 3

    history = [
        {"role": "user", "content": "Weather in Rome?"},
        assistant_calls(("chatcmpl-tool-0", "get_weather", '{"city": "Rome"}')),
        {"role": "tool", "tool_call_id": "chatcmpl-tool-0", "content": "warm"},
    ]
    requests = upstream.requests
    assert requests[0].messages == [{"role": "system", "content": "sys one"}, history[0]]
    assert requests[1].messages == [{"role": "system", "content": "sys one"}, *history]
    assert requests[2].messages == [
        {"role": "system", "content": "sys two"}, *history,
        {"role": "assistant", "content": "Warm in Rome."}, {"role": "user", "content": "Thanks"},
    ]
    assert "tools" not in requests[2].body
    assert len({r.peer for r in requests}) == 1  # one kept-alive upstream connection served all three


def test_ws_warm_up_is_not_forwarded(upstream: FakeUpstream, client: OpenAI) -> None:
    upstream.script(text_reply("Ready."))
    with client.responses.connect() as conn:
        warm = ws_turn(conn, model="m", generate=False, instructions="sys", input="Context first.")
        assert warm[-1].type == "response.completed" and warm[-1].response.output == []
        assert upstream.requests == []  # answered locally
        answer = ws_turn(conn, model="m", instructions="sys", previous_response_id=warm[-1].response.id,
                         input="Go.")
        assert answer[-1].response.output_text == "Ready."
    [received] = upstream.requests
    assert received.messages == [{"role": "system", "content": "sys"}, {"role": "user", "content": "Context first."},
                                 {"role": "user", "content": "Go."}]


def test_forced_tool_single_call(upstream: FakeUpstream, client: OpenAI) -> None:
    # parallel_tool_calls false: the upstream's second call is dropped, also from the session's history.
    upstream.script(tool_reply([("get_time", '{"tz": "UTC"}'), ("get_time", '{"tz": "CET"}')]), text_reply("Noon."))
    with client.responses.connect() as conn:
        first = ws_turn(conn, model="m", input="Time?", tools=WEATHER_TOOLS, parallel_tool_calls=False,
                        tool_choice={"type": "function", "name": "get_time"})
        response = first[-1].response
        assert [item.type for item in response.output] == ["function_call"]
        second = ws_turn(conn, model="m", tools=WEATHER_TOOLS, previous_response_id=response.id,
                         input=[{"type": "function_call_output", "call_id": "chatcmpl-tool-0", "output": "12:00"}])
        assert second[-1].type == "response.completed"
    body = upstream.requests[0].body
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert body["parallel_tool_calls"] is False
    assert upstream.requests[1].messages[1:] == [
        assistant_calls(("chatcmpl-tool-0", "get_time", '{"tz": "UTC"}')),
        {"role": "tool", "tool_call_id": "chatcmpl-tool-0", "content": "12:00"},
    ]


def test_custom_tool_is_offered_as_function_and_unwrapped(upstream: FakeUpstream, client: OpenAI) -> None:
    tools = [{"type": "custom", "name": "apply_patch", "description": "Apply a patch"}]
    upstream.script(tool_reply([("apply_patch", json.dumps({"input": PATCH}))], size=3), text_reply("Applied."))
    events = sse_events(client, model="m", input="Add a.txt", tools=tools)
    assert collapse([e["type"] for e in events]) == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.custom_tool_call_input.delta", "response.custom_tool_call_input.done",
        "response.output_item.done", "response.completed",
    ]
    [item] = events[-1]["response"]["output"]
    assert item["type"] == "custom_tool_call" and item["input"] == PATCH and item["name"] == "apply_patch"
    [offered] = upstream.requests[0].body["tools"]
    assert offered["function"]["name"] == "apply_patch"
    assert offered["function"]["description"] == "Apply a patch"
    assert offered["function"]["parameters"]["properties"]["input"]["type"] == "string"

    second = client.responses.create(
        model="m", tools=tools, previous_response_id=events[-1]["response"]["id"],
        input=[{"type": "custom_tool_call_output", "call_id": item["call_id"], "output": "Done!"}],
    )
    assert second.output_text == "Applied."
    assistant, tool = upstream.requests[1].messages[1:]
    [call] = assistant["tool_calls"]
    assert call["function"]["name"] == "apply_patch"
    assert json.loads(call["function"]["arguments"]) == {"input": PATCH}
    assert tool == {"role": "tool", "tool_call_id": item["call_id"], "content": "Done!"}


def test_reasoning_content_streams_as_reasoning(upstream: FakeUpstream, client: OpenAI) -> None:
    upstream.script(Reply([chunk({"role": "assistant", "reasoning_content": "Think"}),
                           chunk({"reasoning_content": "ing."}), chunk({"content": "Answer."}),
                           chunk({}, finish="stop"), chunk(None, usage=usage(3, 4))]), text_reply("Next."))
    events = sse_events(client, model="m", input="Q?")
    assert [item["type"] for item in events[-1]["response"]["output"]] == ["reasoning", "message"]
    assert events[-1]["response"]["output"][1]["content"][0]["text"] == "Answer."
    second = client.responses.create(model="m", input="More", previous_response_id=events[-1]["response"]["id"])
    assert second.output_text == "Next."
    # The reasoning has no chat form: the upstream sees only the answer.
    assert upstream.requests[1].messages[1] == {"role": "assistant", "content": "Answer."}


def test_upstream_that_ignores_stream(upstream: FakeUpstream, client: OpenAI) -> None:
    # A whole completion as JSON, with a tool call that has no id and no usage: tether still answers.
    completion = {"id": "c", "object": "chat.completion", "model": MODEL, "choices": [{
        "index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
    }]}
    upstream.script(Reply(completion=completion))
    response = client.responses.create(model="m", input="Weather?", tools=WEATHER_TOOLS)
    assert response.status == "completed"
    [call] = response.output
    assert call.type == "function_call" and call.arguments == '{"city": "Oslo"}' and call.call_id.startswith("call")
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.input_tokens_details.cached_tokens == 0


# -- failures ------------------------------------------------------------------------------------
def test_http_500_fails_the_response_json(upstream: FakeUpstream, client: OpenAI) -> None:
    upstream.script(error_reply(500, "CUDA out of memory"))
    response = client.responses.create(model="m", input="Hi")
    assert response.status == "failed"
    assert response.error is not None and response.error.code == "server_error"
    assert "HTTP 500" in response.error.message and "CUDA out of memory" in response.error.message


def test_http_429_fails_the_response_sse(upstream: FakeUpstream, client: OpenAI) -> None:
    upstream.script(error_reply(429, "Too many requests, slow down"))
    events = sse_events(client, model="m", input="Hi")
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.failed"]
    error = events[-1]["response"]["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert "HTTP 429" in error["message"] and "Too many requests" in error["message"]


def test_context_length_error_code(upstream: FakeUpstream, server: RunningServer) -> None:
    # vLLM's error shape; `context_length_exceeded` is a code Codex knows but the SDK's Literal lacks,
    # so this reads the raw JSON.
    upstream.script(Reply(status=400, error={
        "object": "error", "type": "BadRequestError", "code": 400,
        "message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
    }))
    response = httpx.post(server.base_url + "/responses", json={"model": "m", "input": "Hi"}, timeout=30).json()
    assert response["status"] == "failed"
    assert response["error"]["code"] == "context_length_exceeded"
    assert "maximum context length is 4096" in response["error"]["message"]


def test_error_inside_the_stream(upstream: FakeUpstream, client: OpenAI) -> None:
    upstream.script(Reply([chunk({"role": "assistant", "content": "Hel"}),
                           {"error": {"message": "engine exploded", "type": "InternalServerError", "code": 500}}]))
    events = sse_events(client, model="m", input="Hi")
    assert events[-1]["type"] == "response.failed"
    assert "engine exploded" in events[-1]["response"]["error"]["message"]
    assert events[-1]["response"]["output"][0]["status"] == "incomplete"


def test_malformed_stream(upstream: FakeUpstream, client: OpenAI) -> None:
    upstream.script(Reply([chunk({"content": "ok"}), "{not json"]))
    response = client.responses.create(model="m", input="Hi")
    assert response.status == "failed" and response.error is not None
    assert "malformed" in response.error.message


def test_connection_dies_mid_stream_then_recovers(upstream: FakeUpstream, client: OpenAI) -> None:
    upstream.script(Reply(text_reply("a partial answer").events, die_after=3), text_reply("Fine again."))
    events = sse_events(client, model="m", input="Hi")
    assert events[-1]["type"] == "response.failed"
    error = events[-1]["response"]["error"]
    assert error["code"] == "server_error" and "upstream" in error["message"]
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "a partial answer"[:8]
    assert client.responses.create(model="m", input="Again").output_text == "Fine again."


def test_stream_without_done_or_finish_fails(upstream: FakeUpstream, client: OpenAI) -> None:
    upstream.script(Reply([chunk({"content": "cut"})], done=False))
    response = client.responses.create(model="m", input="Hi")
    assert response.status == "failed" and response.error is not None
    assert "ended before it finished" in response.error.message


def test_connection_refused(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/"
    with running_server(tmp_path, "--backend", "upstream", "--upstream-url", url) as down:
        client = OpenAI(base_url=down.base_url, api_key="unused", max_retries=0)
        events = sse_events(client, model="m", input="Hi")
        assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.failed"]
        message = events[-1]["response"]["error"]["message"]
        assert "Could not connect to the upstream model server" in message and url.rstrip("/") in message
        assert client.models.list().data == []  # start-up found nothing to list, and did not fail


def test_model_override_and_api_key(fake: FakeUpstream, tmp_path: Path) -> None:
    fake.reset()
    fake.script(text_reply("hi"))
    args = ["--backend", "upstream", "--upstream-url", fake.url + "/v1/", "--upstream-model", "served-name",
            "--upstream-api-key", "up-secret"]
    with running_server(tmp_path, *args) as overridden:
        client = OpenAI(base_url=overridden.base_url, api_key="unused", max_retries=0)
        assert [model.id for model in client.models.list()] == ["served-name"]
        assert client.responses.create(model="client-model", input="Hi").output_text == "hi"
    [received] = fake.requests
    assert received.body["model"] == "served-name"
    assert received.headers["Authorization"] == "Bearer up-secret"


# -- the backend in-process ----------------------------------------------------------------------
def test_api_base() -> None:
    assert api_base("http://h:8000") == "http://h:8000/v1"
    assert api_base("http://h:8000/v1/") == "http://h:8000/v1"
    assert api_base("http://h/openai/v1/chat/completions") == "http://h/openai/v1"


def test_render_items() -> None:
    items = normalize_input([
        {"role": "developer", "content": "dev note"},
        {"role": "user", "content": [
            {"type": "input_text", "text": "look: "},
            {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "low"},
        ]},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hmm"}]},
        {"type": "function_call", "call_id": "c1", "name": "a", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "b", "arguments": "{\"x\":1}"},
        {"type": "web_search_call", "status": "completed", "action": {"type": "search", "query": "q"}},
        {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "A"}]},
        {"type": "function_call_output", "call_id": "c2", "output": "B"},
    ])
    messages: list[dict[str, Any]] = []
    assert render_items(messages, items) == 6
    assert messages == [
        {"role": "system", "content": "dev note"},
        {"role": "user", "content": [{"type": "text", "text": "look: "},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA",
                                                                         "detail": "low"}}]},
        assistant_calls(("c1", "a", "{}"), ("c2", "b", '{"x":1}')),
        {"role": "tool", "tool_call_id": "c1", "content": "A"},
        {"role": "tool", "tool_call_id": "c2", "content": "B"},
    ]


async def _turn(session: Any, items: list[dict[str, Any]], params: GenerationParams) -> list[Any]:
    return [delta async for delta in session.generate(items, params)]


async def test_session_fork_is_independent(fake: FakeUpstream) -> None:
    fake.reset()
    _, tools = validate_tools(WEATHER_TOOLS)
    params = GenerationParams(model="m", tools=tools)
    backend = UpstreamBackend(fake.url)
    await backend.start()
    try:
        session = backend.new_session()
        fake.script(text_reply("Let me look."))
        deltas = await _turn(session, normalize_input("Weather?"), params)
        assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == "Let me look."
        assert isinstance(deltas[-1], Finished) and not session.broken
        session.commit([{"type": "message", "role": "assistant",
                         "content": [{"type": "output_text", "text": "Let me look."}]}])
        twin = session.fork()
        # A call after the assistant's text joins its message (copy on write: the twin keeps its own).
        fake.script(tool_reply([("get_weather", '{"city": "Oslo"}')]))
        call = {"type": "function_call", "call_id": "c9", "name": "get_weather", "arguments": "{}"}
        deltas = await _turn(session, [call, {"type": "function_call_output", "call_id": "c9", "output": "x"}], params)
        assert [d.name for d in deltas if isinstance(d, ToolCallDelta) and d.name] == ["get_weather"]
        session.commit([{"type": "function_call", "call_id": "chatcmpl-tool-0", "name": "get_weather",
                         "arguments": '{"city": "Oslo"}'}])
        assert twin.messages == [{"role": "user", "content": "Weather?"},
                                 {"role": "assistant", "content": "Let me look."}]
        assert session.messages[1] == {**assistant_calls(("c9", "get_weather", "{}")), "content": "Let me look."}
        assert session.messages[-1] == assistant_calls(("chatcmpl-tool-0", "get_weather", '{"city": "Oslo"}'))
        assert session.items_seen == 5 and twin.items_seen == 2
    finally:
        await backend.aclose()


async def test_timeout_is_a_backend_error(fake: FakeUpstream) -> None:
    fake.reset()
    fake.script(Reply(text_reply("late").events, stall=2.0))
    backend = UpstreamBackend(fake.url, timeouts=Timeouts(first_byte=0.3))
    session = backend.new_session()
    try:
        with pytest.raises(BackendError, match="first-byte timeout"):
            await _turn(session, normalize_input("Hi"), GenerationParams(model="m"))
        assert session.broken
    finally:
        await backend.aclose()
