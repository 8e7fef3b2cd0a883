"""WebSocket mode: client events (flat create, ignored and rejected fields, warm-up, steer, processed, bad frames)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai import AsyncOpenAI, OpenAI
from websockets.sync.client import connect

from .support import (
    TEXT_SEQUENCE,
    RunningServer,
    ScriptedServer,
    check_sequence_numbers,
    collapse,
)
from .ws_support import (
    acollect,
    arecv,
    assert_ws_error,
    collect,
    completed,
    create_event,
    metric,
    output_text,
    recv,
    user,
)

TURNS = [{"text": "first answer"}, {"text": "second answer"}]


SERVER = ScriptedServer(TURNS)


@pytest.fixture
def conn(server: RunningServer) -> Iterator[Any]:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect() as connection:
        yield connection


def assert_usable(conn: Any) -> None:
    """The connection still serves a create after whatever came before."""
    conn.response.create(model="m", input="still there?", store=False)
    events = collect(conn)
    assert collapse([e["type"] for e in events]) == TEXT_SEQUENCE
    assert output_text(completed(events)) == "first answer"


def test_flat_create_with_stream_true_and_unknown_fields(conn: Any) -> None:
    conn.send(
        create_event(
            input=[user("hi")],
            stream=True,
            store=False,
            instructions="be brief",
            client_metadata={"x-codex-installation-id": "abc", "traceparent": "00-1-2-01"},
            some_future_field={"nested": [1, 2]},
        )
    )
    events = collect(conn)
    assert collapse([e["type"] for e in events]) == TEXT_SEQUENCE
    check_sequence_numbers(events)
    response = completed(events)
    assert output_text(response) == "first answer"
    assert response["instructions"] == "be brief"
    assert response["store"] is False


def test_stream_false_is_ignored_too(conn: Any) -> None:
    conn.response.create(model="m", input="hi", stream=False)
    events = collect(conn)
    assert collapse([e["type"] for e in events]) == TEXT_SEQUENCE


def test_background_true_is_an_error_event(conn: Any) -> None:
    conn.response.create(model="m", input="hi", background=True)
    [event] = collect(conn)
    assert_ws_error(event, None, "background")
    assert "stream_id" not in event
    conn.response.create(model="m", input="hi", background=True, stream_id="bg")
    [event] = collect(conn)
    assert_ws_error(event, None, "background")
    assert event["stream_id"] == "bg"
    assert_usable(conn)


def test_background_false_is_accepted(conn: Any) -> None:
    conn.response.create(model="m", input="hi", background=False)
    assert completed(collect(conn))["background"] is False


def test_warm_up_then_continue_from_it(server: RunningServer, conn: Any) -> None:
    conn.send(create_event(generate=False, input=[user("system-ish context")], store=False,
                           tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}}]))
    events = collect(conn)
    assert [e["type"] for e in events] == ["response.created", "response.completed"]
    check_sequence_numbers(events)
    warm = completed(events)
    assert warm["output"] == []
    assert warm["status"] == "completed"
    assert events[0]["response"]["id"] == warm["id"]
    assert warm["usage"]["output_tokens"] == 0

    handed = metric(server, "tether_backend_items_handed_total", transport="ws")
    hits = metric(server, "tether_ws_cache_hits_total")
    conn.send(create_event(input=[user("now answer")], previous_response_id=warm["id"], store=False,
                           tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}}]))
    response = completed(collect(conn))
    assert response["previous_response_id"] == warm["id"]
    assert output_text(response) == "first answer"  # the warm-up has no model turn
    # store:false, so the parent can only have come from the lane's cache: one hit, and only the new item rendered.
    assert metric(server, "tether_ws_cache_hits_total") == hits + 1
    assert metric(server, "tether_backend_items_handed_total", transport="ws") == handed + 1
    assert response["usage"]["input_tokens_details"]["cached_tokens"] > 0


def test_warm_up_with_empty_input(conn: Any) -> None:
    conn.send(create_event(generate=False, input=[], store=False))
    warm = completed(collect(conn))
    assert warm["output"] == []
    conn.response.create(model="m", input="go", previous_response_id=warm["id"], store=False)
    assert output_text(completed(collect(conn))) == "first answer"


def test_steer_of_a_response_not_on_this_connection_fails(conn: Any) -> None:
    conn.response.steer(input="focus on tests", previous_response_id="resp_123")
    event = recv(conn)
    assert event["type"] == "response.steer.failed"
    assert event["error"]["code"] == "response_not_found"
    assert event["steer"]["previous_response_id"] == "resp_123"
    assert event["steer"]["input"] == "focus on tests"  # the uncommitted input comes back
    assert "stream_id" not in event
    assert_usable(conn)


def test_response_processed_is_accepted_silently(conn: Any) -> None:
    conn.response.create(model="m", input="hi", store=False)
    response = completed(collect(conn))
    conn.send({"type": "response.processed", "response_id": response["id"]})
    conn.send({"type": "response.processed", "response_id": "resp_unknown"})
    # No reply to either: the next event on the socket is the next create's first event.
    conn.response.create(model="m", input="again", store=False)
    events = collect(conn)
    assert events[0]["type"] == "response.created"
    assert collapse([e["type"] for e in events]) == TEXT_SEQUENCE


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('{"type": "response.cancel"}', "invalid_event"),
        ('{"type": "response.append", "input": []}', "invalid_event"),
        ('{"no_type": true}', "invalid_event"),
        ("[1, 2, 3]", "invalid_event"),
        ('"response.create"', "invalid_event"),
        ("null", "invalid_event"),
        ("{not json", "invalid_json"),
        ("", "invalid_json"),
    ],
    ids=["cancel", "append", "no-type", "array", "string", "null", "broken", "empty"],
)
def test_bad_text_frames_get_an_error_and_the_socket_stays_open(conn: Any, frame: str, code: str) -> None:
    conn.send_raw(frame)
    [event] = collect(conn)
    assert event["type"] == "error" and event["status"] == 400
    assert event["error"]["code"] == code
    assert event["error"]["type"] == "invalid_request_error"
    assert "stream_id" not in event and "sequence_number" not in event
    assert_usable(conn)


def test_binary_frame_gets_an_error_and_the_socket_stays_open(server: RunningServer) -> None:
    with connect(server.ws_url, open_timeout=10) as ws:
        ws.send(json.dumps(create_event(input="hi")).encode())  # a valid event, but in a binary frame
        [event] = collect(ws)
        assert event["type"] == "error" and event["status"] == 400
        assert event["error"]["code"] == "invalid_event"
        ws.send(json.dumps(create_event(input="hi", store=False)))
        assert output_text(completed(collect(ws))) == "first answer"


async def test_async_sdk_warm_up_steer_and_bad_frame(server: RunningServer) -> None:
    client = AsyncOpenAI(base_url=server.base_url, api_key="unused")
    async with client.responses.connect() as conn:
        await conn.send(create_event(generate=False, input=[user("ctx")], store=False))
        warm = completed(await acollect(conn))
        await conn.response.steer(input=[user("steer")], previous_response_id=warm["id"])
        steer = await arecv(conn)
        assert steer["type"] == "response.steer.failed" and steer["error"]["code"] == "response_already_completed"
        await conn.send_raw("}{")
        assert_ws_error(await arecv(conn), "invalid_json", None)
        await conn.response.create(model="m", input="go", previous_response_id=warm["id"], store=False)
        response = completed(await acollect(conn))
        assert output_text(response) == "first answer"
        assert response["previous_response_id"] == warm["id"]
