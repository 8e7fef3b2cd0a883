"""WebSocket mode and the store (SQLite and PostgreSQL): store:false never leaves memory; store:true is
readable once completed is sent."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from openai import AsyncOpenAI, OpenAI

from .store_support import STORED_KINDS, StoreUnderTest, store_for
from .support import RunningServer, running_server, write_script
from .ws_support import arecv, collect, completed, create_event, user

TURNS = [{"tool_calls": [{"name": "f", "arguments": {}}]}, {"text": "stored answer"}]
TOOLS = [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}]


@pytest.fixture(scope="module", params=STORED_KINDS)
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> StoreUnderTest:
    return store_for(request.param, request, tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def server(store: StoreUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("server")
    script = write_script(directory, TURNS)
    with running_server(directory, "--backend", "scripted", "--script", str(script), "--store", store.spec) as s:
        yield s


def test_store_false_is_not_retrievable_and_never_written(server: RunningServer, store: StoreUnderTest) -> None:
    secret = f"zdr-{uuid.uuid4().hex}"
    stored_marker = f"kept-{uuid.uuid4().hex}"
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect() as conn:
        conn.send(create_event(input=[user(secret)], tools=TOOLS, store=False))
        first = completed(collect(conn))
        conn.send(create_event(input=[{"type": "function_call_output", "call_id": first["output"][0]["call_id"],
                                       "output": secret}], previous_response_id=first["id"], tools=TOOLS, store=False))
        second = completed(collect(conn))
        conn.send(create_event(input=[user(stored_marker)], tools=TOOLS, store=True))
        kept = completed(collect(conn))
    for response in (first, second):
        assert response["store"] is False
        reply = httpx.get(f"{server.base_url}/responses/{response['id']}", timeout=10)
        assert reply.status_code == 404, reply.text
        assert httpx.get(f"{server.base_url}/responses/{response['id']}/input_items", timeout=10).status_code == 404
    assert httpx.get(f"{server.base_url}/responses/{kept['id']}", timeout=10).status_code == 200
    # Wait until the stored response was written, then check the store:false ones never were.
    deadline = time.monotonic() + 10
    while kept["id"].encode() not in store.written():
        assert time.monotonic() < deadline, "the store:true response never reached the disk"
        time.sleep(0.05)
    written = store.written()
    assert stored_marker.encode() in written
    for needle in (secret, first["id"], second["id"], first["output"][0]["call_id"]):
        assert needle.encode() not in written, f"{needle} was written to disk"


def test_get_right_after_completed_finds_the_response(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with httpx.Client(base_url=server.base_url, timeout=10) as http, client.responses.connect() as conn:
        previous = None
        new_input: list[dict[str, object]] = [user("store me")]
        for _ in range(10):
            conn.send(create_event(input=new_input, previous_response_id=previous, tools=TOOLS, store=True))
            response = completed(collect(conn))
            reply = http.get(f"/responses/{response['id']}")  # issued the moment completed arrived
            assert reply.status_code == 200, reply.text
            assert reply.json()["id"] == response["id"]
            assert reply.json()["status"] == "completed"
            assert reply.json()["output"] == response["output"]
            items = http.get(f"/responses/{response['id']}/input_items")
            assert items.status_code == 200
            if response["output"][0]["type"] == "function_call":
                previous = response["id"]
                new_input = [{"type": "function_call_output", "call_id": response["output"][0]["call_id"],
                              "output": "ok"}]
            else:
                previous, new_input = None, [user("store me")]


async def test_async_get_right_after_completed_on_named_lanes(server: RunningServer) -> None:
    client = AsyncOpenAI(base_url=server.base_url, api_key="unused")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http, client.responses.connect() as conn:
        lanes = [f"lane-{n}" for n in range(6)]
        for lane in lanes:
            await conn.send(create_event(input=[user("hi")], tools=TOOLS, stream_id=lane))
        done: list[str] = []
        while len(done) < len(lanes):
            event = await arecv(conn)
            assert event["type"] != "error", event
            if event["type"] == "response.completed":
                reply = await http.get(f"/responses/{event['response']['id']}")
                assert reply.status_code == 200, reply.text
                assert reply.json()["output"] == event["response"]["output"]
                done.append(event["stream_id"])
        assert sorted(done) == sorted(lanes)
