"""The WebSocket route under an ASGI server that is not tether's uvicorn protocol (starlette's test
client here): its scope has no direct frame writer (`ws_protocol.DIRECT_SEND`), so the pump sends
through the ASGI `websocket.send` message, and a turn and its continuation still stream whole."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.testclient import TestClient

from tether.backends.scripted import Script, ScriptedBackend
from tether.server.asgi import TetherApp
from tether.server.config import ServerConfig
from tether.server.state import AppState
from tether.store.memory import MemoryStore


def events_until_done(ws: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while not events or events[-1]["type"] not in ("response.completed", "response.failed", "error"):
        events.append(orjson.loads(ws.receive_text()))
    return events


def test_a_turn_and_its_continuation_stream_through_the_asgi_send() -> None:
    script = Script.from_dict({"turns": [{"text": "first answer"}, {"text": "second answer"}],
                               "tokens_per_second": 1e9, "ttft_ms": 0})
    app = TetherApp(AppState.build(ServerConfig(), ScriptedBackend(script), MemoryStore()))
    with TestClient(app) as client, client.websocket_connect("/v1/responses") as ws:
        ws.send_text(orjson.dumps({"type": "response.create", "model": "m", "input": "hi", "store": False}).decode())
        first = events_until_done(ws)
        assert [e["type"] for e in first][:2] == ["response.created", "response.in_progress"]
        assert first[-1]["type"] == "response.completed"
        assert first[-1]["response"]["output"][0]["content"][0]["text"] == "first answer"
        ws.send_text(orjson.dumps({"type": "response.create", "model": "m", "input": "more", "store": False,
                                   "previous_response_id": first[-1]["response"]["id"]}).decode())
        second = events_until_done(ws)
        assert second[-1]["response"]["output"][0]["content"][0]["text"] == "second answer"
