"""WebSocket mode: the connection lifetime limit (`--ws-lifetime`): an error event, then a normal close."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI, OpenAI
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

from .support import RunningServer, ScriptedServer, running_server, validate_ws_event, write_script
from .ws_support import arecv, assert_ws_error, collect, completed, create_event, metric, recv

LIFETIME_S = 2.0


SERVER = ScriptedServer([{"text": "short"}], "--ws-lifetime", str(LIFETIME_S))


def assert_limit_error(event: dict[str, Any]) -> None:
    assert_ws_error(event, "websocket_connection_limit_reached", None)
    assert "stream_id" not in event
    assert "Create a new websocket connection" in event["error"]["message"]


def test_limit_error_then_close_1000(server: RunningServer) -> None:
    started = time.monotonic()
    with connect(server.ws_url, open_timeout=10) as ws:
        ws.send(json.dumps(create_event(input="hi", store=False)))  # the connection works until the limit
        assert completed(collect(ws))["status"] == "completed"
        event = recv(ws, timeout=LIFETIME_S + 10)
        elapsed = time.monotonic() - started
        assert_limit_error(event)
        assert LIFETIME_S - 0.5 <= elapsed <= LIFETIME_S + 5, elapsed
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=10)
        assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1000


def test_sdk_iteration_ends_quietly_after_the_limit(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect() as conn:
        received = list(conn)  # ends on the normal close, no exception
    assert [event.type for event in received] == ["error"]
    validate_ws_event(received[0].to_dict())
    assert_limit_error(received[0].to_dict())


async def test_async_sdk_gets_the_limit_and_a_new_connection_works(server: RunningServer) -> None:
    client = AsyncOpenAI(base_url=server.base_url, api_key="unused")
    async with client.responses.connect() as conn:
        await conn.send(create_event(input="hi", store=False))
        first = None
        while (event := await arecv(conn, timeout=LIFETIME_S + 10))["type"] != "error":
            first = first or event
        assert_limit_error(event)
        assert first is not None and first["type"] == "response.created"
    async with client.responses.connect() as conn:
        await conn.send(create_event(input="hi again", store=False))
        assert (await arecv(conn))["type"] == "response.created"
    deadline = time.monotonic() + 10
    while metric(server, "tether_ws_connections") != 0:
        assert time.monotonic() < deadline, "the server still counts an open connection"
        await asyncio.sleep(0.05)


def test_response_in_flight_at_the_limit_finishes_first(tmp_path: Path) -> None:
    """A response still streaming when the limit strikes completes; a create sent meanwhile is refused
    with the limit error; then the limit error and the close 1000 follow."""
    script = write_script(tmp_path, [{"text": "slow words " * 80}], tokens_per_second=100, ttft_ms=1)
    with running_server(tmp_path, "--backend", "scripted", "--script", str(script), "--store", "memory",
                        "--ws-lifetime", "1") as slow, connect(slow.ws_url, open_timeout=10) as ws:
        ws.send(json.dumps(create_event(input="go", store=False)))
        first = recv(ws, timeout=10)
        assert first["type"] == "response.created"
        time.sleep(1.3)  # past the limit, while the ~2.2 s answer is still streaming
        ws.send(json.dumps(create_event(input="late", store=False)))
        events = [first]
        while True:
            event = recv(ws, timeout=10)
            events.append(event)
            if event["type"] == "error" and event["error"]["code"] == "websocket_connection_limit_reached":
                if any(e["type"] == "response.completed" for e in events):
                    break
        types = [e["type"] for e in events]
        assert "response.completed" in types
        assert types.index("response.completed") < len(types) - 1
        assert sum(1 for e in events if e["type"] == "response.created") == 1  # the late create never ran
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=10)
        assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1000
