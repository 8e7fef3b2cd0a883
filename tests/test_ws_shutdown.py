"""Shutdown: a response in flight finishes, then WebSocket connections close with 1001."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import websockets.sync.client as ws_client
from websockets.exceptions import ConnectionClosed

from .support import start_server, validate_ws_event, write_script


def test_sigterm_finishes_in_flight_response_then_closes_1001(tmp_path: Path) -> None:
    script = write_script(tmp_path, [{"text": "slow words " * 30}], tokens_per_second=150, ttft_ms=1)
    server = start_server(tmp_path, "--backend", "scripted", "--script", str(script), "--store", "memory")
    try:
        with ws_client.connect(server.ws_url) as sock:
            sock.send(json.dumps({"type": "response.create", "model": "m", "input": "go", "store": False}))
            first = json.loads(sock.recv(timeout=10))
            assert first["type"] == "response.created"
            server.process.send_signal(signal.SIGTERM)
            events = [first]
            close_code = None
            try:
                while True:
                    events.append(json.loads(sock.recv(timeout=20)))
            except ConnectionClosed as closed:
                close_code = closed.rcvd.code if closed.rcvd else None
            for event in events:
                validate_ws_event(event)
            assert events[-1]["type"] == "response.completed"
            assert close_code == 1001
    finally:
        assert server.stop() in (0, -signal.SIGTERM)
