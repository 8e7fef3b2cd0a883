"""Helpers for the WebSocket-mode tests: receive and validate server events, collect responses, read metrics.

Every event a helper returns was received as a text frame, parsed as one JSON object and validated strictly
against the SDK's WebSocket server-event models (`validate_ws_event`). Receives have a deadline, so a server
that stays silent fails a test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tether.api.events import TERMINAL_EVENT_TYPES as TERMINAL

from .support import RunningServer, validate_ws_event

RECV_TIMEOUT_S = 30.0
Event = dict[str, Any]


def _socket(conn: Any) -> Any:
    """The `websockets` connection under an SDK connection (or the raw connection itself)."""
    return getattr(conn, "_connection", conn)


def _decode(conn: Any, data: str | bytes) -> Event:
    assert isinstance(data, str), f"the server must send text frames, got a binary frame: {data!r:.200}"
    event = json.loads(data)
    assert isinstance(event, dict), f"each frame must be one JSON object: {data:.200}"
    validate_ws_event(event)
    if hasattr(conn, "parse_event"):  # the SDK's own parser agrees on the type
        assert conn.parse_event(data).type == event["type"]
    return event


def recv(conn: Any, timeout: float = RECV_TIMEOUT_S) -> Event:
    """The next server event, from an SDK `ResponsesConnection` or a sync `websockets` connection."""
    return _decode(conn, _socket(conn).recv(timeout=timeout))


async def arecv(conn: Any, timeout: float = RECV_TIMEOUT_S) -> Event:
    """The next server event, from an SDK `AsyncResponsesConnection` or an asyncio `websockets` connection."""
    return _decode(conn, await asyncio.wait_for(_socket(conn).recv(), timeout))


def collect(conn: Any, terminals: int = 1, timeout: float = RECV_TIMEOUT_S) -> list[Event]:
    """Events up to and including the `terminals`-th terminal event (completed/failed/incomplete/error)."""
    events: list[Event] = []
    seen = 0
    while seen < terminals:
        event = recv(conn, timeout)
        events.append(event)
        seen += event["type"] in TERMINAL
    return events


async def acollect(conn: Any, terminals: int = 1, timeout: float = RECV_TIMEOUT_S) -> list[Event]:
    events: list[Event] = []
    seen = 0
    while seen < terminals:
        event = await arecv(conn, timeout)
        events.append(event)
        seen += event["type"] in TERMINAL
    return events


def completed(events: list[Event]) -> dict[str, Any]:
    """The response of a stream that must have ended in `response.completed`."""
    assert events[-1]["type"] == "response.completed", events[-1]
    return dict(events[-1]["response"])


def output_text(response: dict[str, Any]) -> str:
    """The concatenated `output_text` parts of a response (what the SDK's `output_text` property gives)."""
    return "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


def by_lane(events: Iterable[Event]) -> dict[str | None, list[Event]]:
    lanes: dict[str | None, list[Event]] = {}
    for event in events:
        lanes.setdefault(event.get("stream_id"), []).append(event)
    return lanes


def assert_ws_error(event: Event, code: str | None, param: str | None, status: int = 400) -> None:
    """The nested WebSocket error shape, with its status, code and param."""
    assert event["type"] == "error", event
    assert event["status"] == status, event
    error = event["error"]
    assert error["type"] == ("invalid_request_error" if status < 500 else "server_error"), event
    assert error["code"] == code, event
    assert error["param"] == param, event
    assert isinstance(error["message"], str) and error["message"], event
    assert "code" not in event and "message" not in event, f"flat SSE error fields on a WS error: {event}"


def create_event(**body: Any) -> Event:
    """A flat `response.create` client event (model defaults to `m`)."""
    return {"type": "response.create", "model": "m", **body}


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def call_outputs(response: dict[str, Any], output: str = "ok") -> list[dict[str, Any]]:
    """One `function_call_output` per function call of `response`."""
    return [
        {"type": "function_call_output", "call_id": item["call_id"], "output": output}
        for item in response["output"]
        if item["type"] == "function_call"
    ]


def metric(server: RunningServer, name: str, api_key: str | None = None, **labels: str) -> float:
    """Sum of the samples named `name` whose labels include `labels` (0 when absent), from `/metrics`."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    reply = httpx.get(server.url + "/metrics", headers=headers, timeout=10)
    assert reply.status_code == 200, reply.text
    text = reply.text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
