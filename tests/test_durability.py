"""Nothing acknowledged is lost: a `store: true` response is on disk before its terminal event, so a
server killed with SIGKILL right after `response.completed` still has it, and its chain continues after
the restart. At SIGTERM, background responses still running are recorded as `cancelled`."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
from openai import OpenAI
from websockets.sync.client import connect

from .support import RunningServer, start_server, write_script
from .ws_support import collect, completed, create_event, user

KILLS = 4


def scripted(tmp_path: Path, *args: str, **settings: object) -> RunningServer:
    script = write_script(tmp_path, [{"text": "noted"}] * 20, **settings)
    store = f"sqlite:{tmp_path / 'responses.sqlite3'}"
    return start_server(tmp_path, "--backend", "scripted", "--script", str(script), "--store", store, *args)


def kill_hard(server: RunningServer) -> None:
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)


def test_every_response_acknowledged_before_sigkill_survives_and_its_chain_continues(tmp_path: Path) -> None:
    acknowledged: list[str] = []
    previous: str | None = None
    for round_number in range(KILLS):
        server = scripted(tmp_path)
        try:
            if round_number % 2 == 0:  # over HTTP: the JSON answer is the acknowledgement
                answer = httpx.post(server.base_url + "/responses", timeout=30, json={
                    "model": "m", "input": f"turn {round_number}", "previous_response_id": previous})
                assert answer.status_code == 200, answer.text
                previous = answer.json()["id"]
            else:  # over WebSocket: `response.completed` is
                with connect(server.ws_url) as ws:
                    ws.send(json.dumps(create_event(input=[user(f"turn {round_number}")],
                                                    previous_response_id=previous)))
                    previous = completed(collect(ws))["id"]
                    kill_hard(server)  # at once, with the socket still open
            acknowledged.append(str(previous))
        finally:
            if server.process.poll() is None:
                kill_hard(server)
    server = scripted(tmp_path)
    try:
        client = OpenAI(base_url=server.base_url, api_key="unused")
        for response_id in acknowledged:
            assert client.responses.retrieve(response_id).status == "completed"
        follow = client.responses.create(model="m", input="and now?", previous_response_id=acknowledged[-1])
        items = client.responses.input_items.list(follow.id, order="asc")
        assert follow.status == "completed" and [item.type for item in items.data] == ["message"]
        chain = client.responses.create(model="m", input="count them", previous_response_id=follow.id)
        assert chain.usage is not None and chain.usage.input_tokens > follow.usage.input_tokens  # type: ignore[union-attr]
    finally:
        server.stop()


def test_sigterm_records_running_background_responses_as_cancelled(tmp_path: Path) -> None:
    # A model far slower than the shutdown grace: the background responses cannot finish in time.
    server = scripted(tmp_path, "--shutdown-grace", "1", tokens_per_second=1)
    ids: list[str] = []
    try:
        client = OpenAI(base_url=server.base_url, api_key="unused")
        for _ in range(2):
            queued = client.responses.create(model="m", input="take your time", background=True)
            assert queued.status in ("queued", "in_progress")
            ids.append(queued.id)
        server.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while server.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.process.returncode is not None, "the server did not stop within the grace"
    finally:
        if server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGKILL)
    restarted = scripted(tmp_path)
    try:
        client = OpenAI(base_url=restarted.base_url, api_key="unused")
        for response_id in ids:
            assert client.responses.retrieve(response_id).status == "cancelled"
    finally:
        restarted.stop()


def test_a_background_response_whose_server_was_killed_reads_as_failed_after_the_restart(tmp_path: Path) -> None:
    server = scripted(tmp_path, tokens_per_second=1)
    try:
        client = OpenAI(base_url=server.base_url, api_key="unused")
        queued = client.responses.create(model="m", input="take your time", background=True)
    finally:
        kill_hard(server)
    restarted = scripted(tmp_path)
    try:
        client = OpenAI(base_url=restarted.base_url, api_key="unused")
        found = client.responses.retrieve(queued.id)
        assert found.status == "failed"
        assert found.error is not None and "stopped before" in found.error.message
        assert client.responses.retrieve(queued.id).status == "failed"  # and stays so
    finally:
        restarted.stop()
