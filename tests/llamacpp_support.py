"""Helpers for the embedded-engine tests: a server on the default model, and event collection."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tether.api.events import TERMINAL_EVENT_TYPES as TERMINAL

from .support import RunningServer, running_server, validate_sse_event, validate_ws_event

MODEL = "SmolLM2-135M-Instruct.Q4_1"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
}
TIME_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_time",
    "description": "Get the current time in a time zone.",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
}


def needs_model() -> None:
    pytest.importorskip("llama_cpp")
    from tether.backends.llamacpp.model_file import default_model_path

    try:
        default_model_path()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@contextlib.contextmanager
def llama_server(tmp_path: Path, *args: str) -> Iterator[RunningServer]:
    needs_model()
    with running_server(tmp_path, "--backend", "llamacpp", "--threads", "2", "--ctx", "4096",
                        "--store", "memory", *args) as server:
        yield server


def ws_turn(conn: Any, **request: Any) -> list[dict[str, Any]]:
    """One `response.create` on a WebSocket connection; every event validated; returns them as dicts."""
    conn.response.create(**request)
    events = []
    for event in conn:
        data = event.to_dict()
        validate_ws_event(data)
        events.append(data)
        if data["type"] in TERMINAL:
            break
    return events


def sse_turn(client: Any, **request: Any) -> list[dict[str, Any]]:
    events = []
    for event in client.responses.create(stream=True, **request):
        data = event.to_dict()
        validate_sse_event(data)
        events.append(data)
    return events


def final_response(events: list[dict[str, Any]]) -> dict[str, Any]:
    last = events[-1]
    assert last["type"] in ("response.completed", "response.incomplete"), last
    return dict(last["response"])


def cached(response: dict[str, Any]) -> int:
    return int(response["usage"]["input_tokens_details"]["cached_tokens"])


def turn_tokens(response: dict[str, Any]) -> int:
    return int(response["usage"]["input_tokens"]) + int(response["usage"]["output_tokens"])
