"""The inner ring: `ResponsesConnection` fed decoded client events directly, no socket, no server.

Every connection rule is checked here: lane FIFO, the in-flight and named-lane limits, backpressure,
parent resolution order, fork vs same-lane eviction, and the lifetime limit."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from tether.api.client_events import CreateEvent, decode_client_event
from tether.backends.scripted import Script, ScriptedBackend
from tether.core.book import ResponseBook
from tether.core.connection import (
    CLOSE_NORMAL,
    Close,
    ConnectionLimits,
    Outcome,
    ResponsesConnection,
    Run,
    Send,
)
from tether.core.connection_cache import CacheBudget
from tether.core.responder import TurnEngine
from tether.store.memory import MemoryStore

OWNER = "owner-a"


def make_connection(**limits: Any) -> ResponsesConnection:
    script = Script.from_dict({"turns": [{"text": "hello there"}], "tokens_per_second": 1e9, "ttft_ms": 0})
    engine = TurnEngine(ScriptedBackend(script), ResponseBook(MemoryStore()))
    return ResponsesConnection(engine, OWNER, ConnectionLimits(**limits), CacheBudget(1 << 30))


def create(lane: str | None = None, previous: str | None = None, **fields: Any) -> CreateEvent:
    body: dict[str, Any] = {"type": "response.create", "model": "m", "input": "hi", "store": False, **fields}
    if lane is not None:
        body["stream_id"] = lane
    if previous is not None:
        body["previous_response_id"] = previous
    event = decode_client_event(orjson.dumps(body), time.perf_counter())
    assert isinstance(event, CreateEvent)
    return event


def runs(outcomes: list[Outcome]) -> list[Run]:
    return [outcome for outcome in outcomes if isinstance(outcome, Run)]


def sends(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    return [outcome.event for outcome in outcomes if isinstance(outcome, Send)]


async def play(connection: ResponsesConnection, run: Run) -> tuple[list[dict[str, Any]], list[Outcome]]:
    """Run one turn to its end as the transport would; returns its events and what `finished` said."""
    events = [event async for event in run.turn.events()]
    return events, connection.finished(run.turn)


async def complete(connection: ResponsesConnection, event: CreateEvent) -> str:
    """Submit a create, run it, return the id of the response it completed."""
    (run,) = runs(connection.receive(event))
    events, _ = await play(connection, run)
    assert events[-1]["type"] == "response.completed", events[-1]
    return str(events[-1]["response"]["id"])


# -- lanes, FIFO, limits ---------------------------------------------------------------------------
def test_same_lane_creates_run_one_at_a_time_in_order() -> None:
    connection = make_connection()
    first = connection.receive(create("a", input="one"))
    second = connection.receive(create("a", input="two"))
    assert len(runs(first)) == 1 and runs(second) == []
    assert connection.queued == 1


async def test_next_create_of_a_lane_starts_when_the_running_one_finishes() -> None:
    connection = make_connection()
    (run_one,) = runs(connection.receive(create("a", input="one")))
    connection.receive(create("a", input="two"))
    _, after = await play(connection, run_one)
    (run_two,) = runs(after)
    assert run_two.turn.create.request is not None
    assert run_two.turn.create.request.input_items[0]["content"][0]["text"] == "two"


def test_other_lanes_run_concurrently_up_to_the_in_flight_limit() -> None:
    connection = make_connection(max_in_flight=3)
    started = [run for lane in "abcd" for run in runs(connection.receive(create(lane)))]
    assert len(started) == 3
    assert connection.in_flight == 3 and connection.queued == 1


async def test_a_lane_waiting_for_the_in_flight_limit_starts_in_arrival_order() -> None:
    connection = make_connection(max_in_flight=1)
    (first,) = runs(connection.receive(create("a")))
    connection.receive(create("c"))
    connection.receive(create("b"))
    _, after = await play(connection, first)
    (next_run,) = runs(after)
    assert next_run.turn.lane.key == "c"


def test_the_33rd_named_lane_is_refused_and_the_default_lane_does_not_count() -> None:
    connection = make_connection(max_named_lanes=32, max_in_flight=64)
    connection.receive(create(None))
    for index in range(32):
        assert runs(connection.receive(create(f"lane-{index}")))
    (error,) = sends(connection.receive(create("one-too-many")))
    assert error["error"]["code"] == "websocket_stream_limit_reached"
    assert error["error"]["param"] == "stream_id" and error["stream_id"] == "one-too-many"


def test_an_invalid_stream_id_is_a_connection_level_error() -> None:
    event = decode_client_event(b'{"type":"response.create","model":"m","input":"x","stream_id":"bad id!"}', 0.0)
    connection = make_connection()
    (error,) = sends(connection.receive(event))
    assert error["error"]["code"] == "invalid_stream_id" and "stream_id" not in error
    assert connection.lanes == {}


def test_backpressure_stops_reading_past_the_queue_bound() -> None:
    connection = make_connection(max_queued=2)
    connection.receive(create("a"))  # runs
    assert connection.has_room
    connection.receive(create("a"))
    assert connection.has_room
    connection.receive(create("a"))
    assert not connection.has_room


def test_backpressure_counts_bytes_but_always_admits_one_frame() -> None:
    connection = make_connection(max_queued_bytes=10)
    connection.receive(create("a"))
    connection.receive(create("a"))  # one waiting frame, larger than the byte bound
    assert not connection.has_room
    connection = make_connection(max_queued_bytes=10)
    assert connection.has_room


# -- parents: cache, then store, then not found ------------------------------------------------
async def test_a_continuation_finds_its_parent_in_the_connection_cache() -> None:
    connection = make_connection()
    parent_id = await complete(connection, create("a"))
    (run,) = runs(connection.receive(create("a", previous=parent_id)))
    events, _ = await play(connection, run)
    assert run.turn.parent is not None and run.turn.parent.source == "cache" and not run.turn.parent.fork
    assert events[-1]["type"] == "response.completed"


async def test_a_stored_parent_not_in_the_cache_is_hydrated_from_the_store() -> None:
    first = make_connection()
    parent_id = await complete(first, create(None, store=True))
    second = ResponsesConnection(first.engine, OWNER, ConnectionLimits(), CacheBudget(1 << 30))
    (run,) = runs(second.receive(create(None, previous=parent_id)))
    events, _ = await play(second, run)
    assert run.turn.parent is not None and run.turn.parent.source == "store"
    assert events[-1]["type"] == "response.completed"


async def test_another_owners_stored_parent_is_not_found() -> None:
    first = make_connection()
    parent_id = await complete(first, create(None, store=True))
    stranger = ResponsesConnection(first.engine, "owner-b", ConnectionLimits(), CacheBudget(1 << 30))
    (run,) = runs(stranger.receive(create(None, previous=parent_id)))
    events, _ = await play(stranger, run)
    assert events == [
        {"type": "error", "status": 400, "error": {
            "message": f"Previous response with id '{parent_id}' not found.", "type": "invalid_request_error",
            "param": "previous_response_id", "code": "previous_response_not_found"}}
    ]


async def test_an_unstored_parent_of_another_connection_is_not_found() -> None:
    first = make_connection()
    parent_id = await complete(first, create(None))
    other = ResponsesConnection(first.engine, OWNER, ConnectionLimits(), CacheBudget(1 << 30))
    (run,) = runs(other.receive(create(None, previous=parent_id)))
    events, _ = await play(other, run)
    assert events[0]["error"]["code"] == "previous_response_not_found"


# -- eviction ------------------------------------------------------------------------------------
async def test_a_failed_same_lane_continuation_evicts_its_parent() -> None:
    connection = make_connection()
    parent_id = await complete(connection, create("a"))
    bad = create("a", previous=parent_id, input=[{"type": "item_reference", "id": "msg_missing"}])
    (run,) = runs(connection.receive(bad))
    events, _ = await play(connection, run)
    assert events[0]["type"] == "error" and events[0]["stream_id"] == "a"
    assert parent_id not in connection.cache.by_id


async def test_a_refused_create_on_the_parents_lane_evicts_the_parent() -> None:
    connection = make_connection()
    parent_id = await complete(connection, create("a"))
    (run,) = runs(connection.receive(create("a", previous=parent_id, temperature=9)))
    events, _ = await play(connection, run)
    assert events[0]["error"]["param"] == "temperature"
    assert parent_id not in connection.cache.by_id


async def test_a_failed_fork_keeps_the_shared_parent() -> None:
    connection = make_connection()
    parent_id = await complete(connection, create("a"))
    bad = create("b", previous=parent_id, input=[{"type": "item_reference", "id": "msg_missing"}])
    (run,) = runs(connection.receive(bad))
    events, _ = await play(connection, run)
    assert events[0]["type"] == "error" and events[0]["stream_id"] == "b"
    assert run.turn.parent is not None and run.turn.parent.fork
    assert parent_id in connection.cache.by_id
    assert await complete(connection, create("a", previous=parent_id))


async def test_a_fork_runs_on_its_own_lane_and_the_source_lane_keeps_its_latest() -> None:
    connection = make_connection()
    parent_id = await complete(connection, create("a"))
    fork_id = await complete(connection, create("b", previous=parent_id))
    assert connection.cache.latest["a"].id == parent_id
    assert connection.cache.latest["b"].id == fork_id


async def test_a_success_replaces_its_lanes_latest() -> None:
    connection = make_connection()
    first = await complete(connection, create("a"))
    second = await complete(connection, create("a", previous=first))
    assert first not in connection.cache.by_id and connection.cache.latest["a"].id == second


# -- lifetime ------------------------------------------------------------------------------------
def test_expiry_when_idle_says_why_and_closes_normally() -> None:
    connection = make_connection(lifetime_seconds=120)
    outcomes = connection.expire()
    (error,) = sends(outcomes)
    assert error["error"]["code"] == "websocket_connection_limit_reached"
    assert "2 minutes" in error["error"]["message"]
    assert outcomes[-1] == Close(CLOSE_NORMAL)


async def test_expiry_lets_the_running_turn_finish_and_refuses_new_creates() -> None:
    connection = make_connection(lifetime_seconds=5)
    (run,) = runs(connection.receive(create("a")))
    assert connection.expire() == []
    (refused,) = sends(connection.receive(create("b")))
    assert refused["error"]["code"] == "websocket_connection_limit_reached" and refused["stream_id"] == "b"
    events, after = await play(connection, run)
    assert events[-1]["type"] == "response.completed"
    assert sends(after)[0]["error"]["code"] == "websocket_connection_limit_reached"
    assert after[-1] == Close(CLOSE_NORMAL)


def test_close_drops_every_cached_lane() -> None:
    connection = make_connection()
    connection.close()
    assert connection.cache.latest == {} and connection.receive(create("a")) == []


# -- other client events ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"not json", "invalid_json"),
        (b"[1, 2]", "invalid_event"),
        (b'{"type": "response.append"}', "invalid_event"),
    ],
)
def test_frames_that_are_no_client_event_get_a_connection_level_error(frame: bytes, code: str) -> None:
    connection = make_connection()
    (error,) = sends(connection.receive(decode_client_event(frame, 0.0)))
    assert error["type"] == "error" and error["status"] == 400 and error["error"]["code"] == code


def test_response_processed_is_accepted_silently() -> None:
    connection = make_connection()
    assert connection.receive(decode_client_event(b'{"type":"response.processed","response_id":"r"}', 0.0)) == []
