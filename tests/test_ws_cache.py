"""WebSocket mode: the connection cache (reuse per turn, misses, eviction on failure, close, hydration)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from openai import AsyncOpenAI, OpenAI

from .support import RunningServer, running_server, write_script
from .ws_support import (
    acollect,
    assert_ws_error,
    call_outputs,
    collect,
    completed,
    create_event,
    metric,
    output_text,
    user,
)

LOOP_CALLS = 25
TOOLS = [{"type": "function", "name": "run",
          "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}}}]
LOOP_TURNS = [{"tool_calls": [{"name": "run", "arguments": {"n": n}}]} for n in range(LOOP_CALLS)]
LOOP_TURNS.append({"text": "finished after the loop"})
CHAT_TURNS = [{"text": "first answer"}, {"text": "second answer"}, {"text": "third answer"}]
HANDED = "tether_backend_items_handed_total"


@pytest.fixture(scope="module")
def loop_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("loop")
    script = write_script(tmp, LOOP_TURNS)
    with running_server(tmp, "--backend", "scripted", "--script", str(script), "--store", "memory") as server:
        yield server


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("chat")
    script = write_script(tmp, CHAT_TURNS)
    with running_server(tmp, "--backend", "scripted", "--script", str(script), "--store", "memory") as server:
        yield server


def sync_client(server: RunningServer) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="unused")


def loop_create(**body: Any) -> dict[str, Any]:
    return create_event(instructions="You run tools.", tools=TOOLS, **body)


def test_text_turns_continue_from_the_cache(chat_server: RunningServer) -> None:
    with sync_client(chat_server).responses.connect() as conn:
        conn.response.create(model="m", input="hello", store=False)
        first = completed(collect(conn))
        assert output_text(first) == "first answer"
        assert first["usage"]["input_tokens_details"]["cached_tokens"] == 0
        hits = metric(chat_server, "tether_ws_cache_hits_total")
        handed = metric(chat_server, HANDED, transport="ws")
        conn.response.create(model="m", input="and then?", previous_response_id=first["id"], store=False)
        second = completed(collect(conn))
        assert output_text(second) == "second answer"  # the context held the first answer
        assert second["previous_response_id"] == first["id"]
        assert second["usage"]["input_tokens_details"]["cached_tokens"] > 0
        assert metric(chat_server, "tether_ws_cache_hits_total") == hits + 1
        assert metric(chat_server, HANDED, transport="ws") == handed + 1


def test_25_turn_tool_loop_reuses_the_cache_every_turn(loop_server: RunningServer) -> None:
    with sync_client(loop_server).responses.connect() as conn:
        handed = metric(loop_server, HANDED, transport="ws")
        hits = metric(loop_server, "tether_ws_cache_hits_total")
        new_input: list[dict[str, Any]] = [user("start the loop")]
        previous: str | None = None
        for turn in range(LOOP_CALLS + 1):
            conn.send(loop_create(input=new_input, previous_response_id=previous, store=False))
            response = completed(collect(conn))
            now_handed = metric(loop_server, HANDED, transport="ws")
            assert now_handed - handed == len(new_input), f"turn {turn}: rendered more than the new items"
            handed = now_handed
            if turn > 0:
                assert response["usage"]["input_tokens_details"]["cached_tokens"] > 0, f"turn {turn}"
                assert metric(loop_server, "tether_ws_cache_hits_total") == hits + turn
            assert response["previous_response_id"] == previous
            previous = response["id"]
            new_input = call_outputs(response, output=f"result {turn}")
            if turn < LOOP_CALLS:
                [call] = response["output"]
                assert call["type"] == "function_call" and call["arguments"] == f'{{"n":{turn}}}'
                assert len(new_input) == 1
            else:
                assert output_text(response) == "finished after the loop"
                assert new_input == []
    assert metric(loop_server, "tether_store_hydrations_total", transport="ws") == 0


def test_unknown_previous_response_id(chat_server: RunningServer) -> None:
    with sync_client(chat_server).responses.connect() as conn:
        for store in (True, False):
            conn.response.create(model="m", input="x", previous_response_id="resp_0123456789abcdef", store=store)
            [event] = collect(conn)
            assert_ws_error(event, "previous_response_not_found", "previous_response_id")
            assert "stream_id" not in event


def test_failed_same_lane_continuation_evicts_its_parent(chat_server: RunningServer) -> None:
    with sync_client(chat_server).responses.connect() as conn:
        conn.response.create(model="m", input="hello", store=False)
        parent = completed(collect(conn))
        evictions = metric(chat_server, "tether_ws_cache_evictions_total", reason="failed_continuation")
        conn.send(create_event(input=[{"type": "not_an_item"}], previous_response_id=parent["id"], store=False))
        [event] = collect(conn)
        assert event["type"] == "error" and event["status"] == 400
        assert metric(chat_server, "tether_ws_cache_evictions_total", reason="failed_continuation") == evictions + 1
        # The parent is gone for good: store:false, so nothing can bring it back.
        conn.response.create(model="m", input="retry", previous_response_id=parent["id"], store=False)
        [event] = collect(conn)
        assert_ws_error(event, "previous_response_not_found", "previous_response_id")


def test_failed_same_lane_continuation_of_a_stored_parent_falls_back_to_the_store(chat_server: RunningServer) -> None:
    with sync_client(chat_server).responses.connect() as conn:
        conn.response.create(model="m", input="hello", store=True)
        parent = completed(collect(conn))
        conn.send(create_event(input=[{"type": "not_an_item"}], previous_response_id=parent["id"]))
        assert collect(conn)[0]["type"] == "error"
        hydrations = metric(chat_server, "tether_store_hydrations_total", transport="ws")
        conn.response.create(model="m", input="retry", previous_response_id=parent["id"])
        response = completed(collect(conn))
        assert output_text(response) == "second answer"
        assert metric(chat_server, "tether_store_hydrations_total", transport="ws") == hydrations + 1


def test_failed_fork_from_another_lane_keeps_the_parent(chat_server: RunningServer) -> None:
    with sync_client(chat_server).responses.connect() as conn:
        conn.response.create(model="m", input="hello", store=False)
        parent = completed(collect(conn))
        conn.send(create_event(input=[{"type": "not_an_item"}], previous_response_id=parent["id"], store=False,
                               stream_id="fork"))
        [event] = collect(conn)
        assert event["type"] == "error" and event["stream_id"] == "fork"
        # The source lane goes on from its parent, from the cache...
        hits = metric(chat_server, "tether_ws_cache_hits_total")
        conn.response.create(model="m", input="go on", previous_response_id=parent["id"], store=False)
        response = completed(collect(conn))
        assert output_text(response) == "second answer"
        assert metric(chat_server, "tether_ws_cache_hits_total") == hits + 1
        # ...and the failed lane can still fork from what the source lane has now.
        conn.response.create(model="m", input="fork again", previous_response_id=response["id"], store=False,
                             stream_id="fork")
        events = collect(conn)
        assert output_text(completed(events)) == "third answer"
        assert all(event["stream_id"] == "fork" for event in events)


def wait_for_metric(server: RunningServer, name: str, value: float, **labels: str) -> None:
    deadline = time.monotonic() + 10
    while metric(server, name, **labels) != value:
        assert time.monotonic() < deadline, f"{name}{labels} stayed at {metric(server, name, **labels)}, not {value}"
        time.sleep(0.05)


def test_closing_the_connection_drops_everything(chat_server: RunningServer) -> None:
    ids = []
    with sync_client(chat_server).responses.connect() as conn:
        conn.response.create(model="m", input="hello", store=False)
        ids.append(completed(collect(conn))["id"])
        conn.response.create(model="m", input="lane", store=False, stream_id="other")
        ids.append(completed(collect(conn))["id"])
        assert metric(chat_server, "tether_ws_cache_bytes") > 0
    wait_for_metric(chat_server, "tether_ws_connections", 0)
    wait_for_metric(chat_server, "tether_ws_cache_bytes", 0)
    wait_for_metric(chat_server, "tether_ws_lanes", 0)
    with sync_client(chat_server).responses.connect() as conn:
        for response_id in ids:
            conn.response.create(model="m", input="again", previous_response_id=response_id, store=False)
            [event] = collect(conn)
            assert_ws_error(event, "previous_response_not_found", "previous_response_id")


async def test_reconnect_continues_a_stored_chain_through_the_store(loop_server: RunningServer) -> None:
    client = AsyncOpenAI(base_url=loop_server.base_url, api_key="unused")
    async with client.responses.connect() as conn:
        await conn.send(loop_create(input=[user("start")], store=True))
        first = completed(await acollect(conn))
        await conn.send(loop_create(input=call_outputs(first), previous_response_id=first["id"], store=True))
        second = completed(await acollect(conn))
    hydrations = metric(loop_server, "tether_store_hydrations_total", transport="ws")
    hits = metric(loop_server, "tether_ws_cache_hits_total")
    handed = metric(loop_server, HANDED, transport="ws")
    async with client.responses.connect() as conn:
        await conn.send(loop_create(input=call_outputs(second), previous_response_id=second["id"], store=True))
        third = completed(await acollect(conn))
        # The whole chain came back from the store: 2 model turns in context, so the script plays turn 2.
        assert third["output"][0]["arguments"] == '{"n":2}'
        assert metric(loop_server, "tether_store_hydrations_total", transport="ws") == hydrations + 1
        assert metric(loop_server, "tether_ws_cache_hits_total") == hits
        # A fresh backend session rendered the whole context once: user, call, output, call, output.
        assert metric(loop_server, HANDED, transport="ws") == handed + 5
        # From here on the chain is hot again on this connection.
        await conn.send(loop_create(input=call_outputs(third), previous_response_id=third["id"], store=True))
        fourth = completed(await acollect(conn))
        assert fourth["output"][0]["arguments"] == '{"n":3}'
        assert fourth["usage"]["input_tokens_details"]["cached_tokens"] > 0
        assert metric(loop_server, "tether_ws_cache_hits_total") == hits + 1
        assert metric(loop_server, HANDED, transport="ws") == handed + 6
        assert metric(loop_server, "tether_store_hydrations_total", transport="ws") == hydrations + 1
