"""A `compaction_trigger` input item (Codex's remote compaction v2): the turn compacts the context as
`POST /v1/responses/compact` does, emits `response.compaction.compacting`, and its output holds the
compaction item; a continuation (by `previous_response_id`, or from the compacted window sent back as
input) goes on with the whole conversation. Over HTTP, SSE and WebSocket, events validated strictly."""

from __future__ import annotations

from typing import Any

import httpx
from openai import OpenAI

from .support import (
    RunningServer,
    ScriptedServer,
    check_output_indices,
    check_sequence_numbers,
    post_sse,
    validate_response,
)
from .ws_support import collect, completed, create_event, output_text, user

TURNS = [{"text": "first answer"}, {"text": "second answer"}, {"text": "third answer"}]
TRIGGER = {"type": "compaction_trigger"}
COMPACTION_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.compaction.compacting",
    "response.output_item.done",
    "response.completed",
]


SERVER = ScriptedServer(TURNS)


def post(server: RunningServer, **body: Any) -> dict[str, Any]:
    reply = httpx.post(server.url + "/v1/responses", json={"model": "m", **body}, timeout=30)
    assert reply.status_code == 200, reply.text
    response: dict[str, Any] = reply.json()
    validate_response(response)
    return response


def check_compacted(response: dict[str, Any]) -> dict[str, Any]:
    assert response["status"] == "completed"
    [item] = response["output"]
    assert item["type"] == "compaction" and item["encrypted_content"]
    assert response["usage"]["input_tokens"] > 0 and response["usage"]["output_tokens"] == 0
    return dict(item)


def test_a_trigger_compacts_and_the_chain_goes_on_over_http(server: RunningServer) -> None:
    first = post(server, input="hello")
    compacted = post(server, previous_response_id=first["id"], input=[user("remember this"), TRIGGER])
    item = check_compacted(compacted)
    # Continuing the compaction response: the model still has the whole conversation (its second turn).
    after = post(server, previous_response_id=compacted["id"], input="go on")
    assert output_text(after) == "second answer"
    assert after["prompt_cache_diagnostics"] == {"type": "cache_hit"}
    # The compacted window sent back as input (what a store:false client does) restores the same context.
    window = post(server, input=[item, user("go on")])
    assert output_text(window) == "second answer"
    assert window["usage"]["input_tokens"] == after["usage"]["input_tokens"]
    # The trigger is kept in the response's input items.
    listed = httpx.get(f"{server.url}/v1/responses/{compacted['id']}/input_items?order=asc", timeout=30).json()
    assert [entry["type"] for entry in listed["data"]] == ["message", "compaction_trigger"]


def test_the_compaction_events_over_sse(server: RunningServer) -> None:
    events = post_sse(server.url, {"model": "m", "input": [user("hello"), TRIGGER]})
    assert [event["type"] for event in events] == COMPACTION_EVENTS
    check_sequence_numbers(events)
    check_output_indices(events)
    item = check_compacted(events[-1]["response"])
    compacting = events[3]
    assert compacting["item_id"] == item["id"] and compacting["output_index"] == 0


def test_a_background_trigger_is_queued_then_compacts(server: RunningServer) -> None:
    events = post_sse(server.url, {"model": "m", "input": [user("hello"), TRIGGER], "background": True})
    assert [event["type"] for event in events] == [*COMPACTION_EVENTS[:1], "response.queued", *COMPACTION_EVENTS[1:]]
    assert events[2]["response"]["status"] == "in_progress"
    final = events[-1]["response"]
    check_compacted(final)
    stored = httpx.get(f"{server.url}/v1/responses/{final['id']}", timeout=30).json()
    assert stored["status"] == "completed" and stored["output"] == final["output"]


def test_a_trigger_over_websocket_keeps_the_engine_state(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect() as conn:
        conn.response.create(model="m", input="hello", store=False)
        first = completed(collect(conn))
        conn.send(create_event(input=[TRIGGER], previous_response_id=first["id"], store=False))
        events = collect(conn)
        assert [event["type"] for event in events] == COMPACTION_EVENTS
        check_sequence_numbers(events)
        compacted = completed(events)
        check_compacted(compacted)
        conn.send(create_event(input=[user("go on")], previous_response_id=compacted["id"], store=False))
        after = completed(collect(conn))
    assert output_text(after) == "second answer"
    # The session took the context at the compaction: the continuation prefilled only its new message.
    prompt, cached = after["usage"]["input_tokens"], after["usage"]["input_tokens_details"]["cached_tokens"]
    assert cached >= compacted["usage"]["input_tokens"] and prompt - cached < 16


def test_a_trigger_that_is_not_the_last_item_is_refused(server: RunningServer) -> None:
    reply = httpx.post(server.url + "/v1/responses", json={"model": "m", "input": [TRIGGER, user("late")]},
                       timeout=30)
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "input"
