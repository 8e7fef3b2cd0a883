"""WebSocket mode: lanes (default FIFO, named lanes concurrent, limits, the in-flight cap, forks across lanes)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
from openai import AsyncOpenAI, OpenAI

from .support import (
    TEXT_SEQUENCE,
    RunningServer,
    ScriptedServer,
    check_sequence_numbers,
    collapse,
)
from .ws_support import (
    acollect,
    assert_ws_error,
    by_lane,
    collect,
    completed,
    create_event,
    metric,
    output_text,
    recv,
)

# ~0.6 s per response at 200 tokens/s: long enough for overlap (or its absence) to show.
LONG = "The quick brown fox jumps over the lazy dog. " * 11
TURNS = [{"text": LONG}, {"text": "second turn"}]
MAX_IN_FLIGHT = 16
MAX_NAMED_LANES = 32


SERVER = ScriptedServer(TURNS, tokens_per_second=200)


@pytest.fixture
def conn(server: RunningServer) -> Iterator[Any]:
    with OpenAI(base_url=server.base_url, api_key="unused").responses.connect() as connection:
        yield connection


def split_responses(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A serial stream cut at each response.created; fails if responses overlap."""
    responses: list[list[dict[str, Any]]] = []
    for event in events:
        if event["type"] == "response.created":
            assert not responses or responses[-1][-1]["type"] == "response.completed", "responses overlapped"
            responses.append([])
        responses[-1].append(event)
    return responses


def open_intervals(events: list[dict[str, Any]]) -> dict[str | None, tuple[int, int]]:
    """For each lane (one response each): the positions of its created and terminal events."""
    spans: dict[str | None, tuple[int, int]] = {}
    for lane, lane_events in by_lane(events).items():
        assert lane_events[0]["type"] == "response.created"
        spans[lane] = (events.index(lane_events[0]), events.index(lane_events[-1]))
    return spans


def test_default_lane_runs_creates_one_at_a_time_in_order(conn: Any) -> None:
    for n in range(3):
        conn.response.create(model="m", input=f"request {n}", metadata={"n": str(n)}, store=False)
    events = collect(conn, terminals=3)
    responses = split_responses(events)
    assert [r[0]["response"]["metadata"]["n"] for r in responses] == ["0", "1", "2"]
    for response_events in responses:
        check_sequence_numbers(response_events)
        assert collapse([e["type"] for e in response_events]) == TEXT_SEQUENCE
        assert all("stream_id" not in e for e in response_events)
        assert output_text(completed(response_events)) == LONG


def test_default_lane_reports_a_queued_create_error_in_its_turn(conn: Any) -> None:
    conn.response.create(model="m", input="first", metadata={"n": "0"}, store=False)
    conn.response.create(model="m", input="second", previous_response_id="resp_unknown", store=False)
    conn.response.create(model="m", input="third", metadata={"n": "2"}, store=False)
    events = collect(conn, terminals=3)
    terminals = [(i, e) for i, e in enumerate(events) if e["type"] in ("response.completed", "error")]
    assert [e["type"] for _, e in terminals] == ["response.completed", "error", "response.completed"]
    assert_ws_error(terminals[1][1], "previous_response_not_found", "previous_response_id")
    first_end, error_at = terminals[0][0], terminals[1][0]
    assert error_at == first_end + 1  # after the first response, before the third starts
    assert events[error_at + 1]["type"] == "response.created"
    assert events[error_at + 1]["response"]["metadata"] == {"n": "2"}


def test_same_named_lane_is_fifo_too(conn: Any) -> None:
    for n in range(2):
        conn.response.create(model="m", input=f"request {n}", metadata={"n": str(n)}, store=False, stream_id="one")
    responses = split_responses(collect(conn, terminals=2))
    assert [r[0]["response"]["metadata"]["n"] for r in responses] == ["0", "1"]


async def test_named_lanes_run_concurrently(server: RunningServer) -> None:
    client = AsyncOpenAI(base_url=server.base_url, api_key="unused")
    async with client.responses.connect() as conn:
        for lane in ("a", "b"):
            await conn.send(create_event(input=f"on {lane}", stream_id=lane, store=False))
        await conn.send(create_event(input="on the default lane", store=False))
        events = await acollect(conn, terminals=3)
    spans = open_intervals(events)
    assert set(spans) == {"a", "b", None}
    for lane, (start, end) in spans.items():
        others = [s for other, s in spans.items() if other != lane]
        assert all(o_start < end and start < o_end for o_start, o_end in others), f"{lane} ran alone: {spans}"
    # Their deltas interleave, not just their lifetimes.
    delta_lanes = [e.get("stream_id") for e in events if e["type"] == "response.output_text.delta"]
    switches = sum(1 for x, y in pairwise(delta_lanes) if x != y)
    assert switches >= 10, delta_lanes
    for lane_events in by_lane(events).values():
        check_sequence_numbers(lane_events)
        assert output_text(completed(lane_events)) == LONG


@pytest.mark.parametrize(
    "stream_id",
    ["", " ", "has space", "x" * 257, "a/b", "lane\n", "ünï", 5, True, ["a"], {"a": 1}],
    ids=["empty", "blank", "space", "too-long", "slash", "newline", "unicode", "int", "bool", "list", "dict"],
)
def test_invalid_stream_id(conn: Any, stream_id: Any) -> None:
    conn.send(create_event(input="x", stream_id=stream_id))
    [event] = collect(conn)
    assert_ws_error(event, "invalid_stream_id", "stream_id")
    assert "stream_id" not in event
    conn.send(create_event(generate=False, input="x", stream_id=None, store=False))  # null: the default lane
    events = collect(conn)
    assert completed(events) and all("stream_id" not in e for e in events)


def test_33rd_named_lane_is_refused(conn: Any) -> None:
    for n in range(MAX_NAMED_LANES):  # warm-ups: instant, and they open the lanes all the same
        conn.send(create_event(generate=False, input=[], stream_id=f"lane-{n}", store=False))
    events = collect(conn, terminals=MAX_NAMED_LANES)
    assert sorted(e["stream_id"] for e in events if e["type"] == "response.completed") == sorted(
        f"lane-{n}" for n in range(MAX_NAMED_LANES)
    )
    conn.send(create_event(input="x", stream_id="lane-extra"))
    [event] = collect(conn)
    assert_ws_error(event, "websocket_stream_limit_reached", "stream_id")
    assert "(32)" in event["error"]["message"]
    # Existing lanes and the default lane (which doesn't count) keep working.
    conn.send(create_event(generate=False, input=[], stream_id="lane-7", store=False))
    assert collect(conn)[-1]["stream_id"] == "lane-7"
    conn.send(create_event(generate=False, input=[], store=False))
    assert "stream_id" not in collect(conn)[-1]
    conn.send(create_event(input="x", stream_id="lane-extra-2"))
    assert_ws_error(collect(conn)[0], "websocket_stream_limit_reached", "stream_id")


async def test_more_than_16_in_flight_are_queued_not_refused(server: RunningServer) -> None:
    lanes = [f"agent_{n}" for n in range(20)]
    client = AsyncOpenAI(base_url=server.base_url, api_key="unused")
    async with client.responses.connect() as conn:
        for lane in lanes:
            await conn.send(create_event(input=f"work on {lane}", stream_id=lane, store=False))
        events = await acollect(conn, terminals=len(lanes), timeout=60)
    assert not [e for e in events if e["type"] == "error"]
    grouped = by_lane(events)
    assert sorted(grouped, key=str) == sorted(lanes)
    for lane_events in grouped.values():
        check_sequence_numbers(lane_events)
        assert output_text(completed(lane_events)) == LONG
    open_now = peak = 0
    for event in events:
        if event["type"] == "response.created":
            open_now += 1
            peak = max(peak, open_now)
        elif event["type"] == "response.completed":
            open_now -= 1
    assert peak == MAX_IN_FLIGHT, f"{peak} responses ran at once"


def test_a_create_may_fork_from_another_lanes_cached_response(server: RunningServer, conn: Any) -> None:
    conn.response.create(model="m", input="root", store=False, stream_id="source")
    root = completed(collect(conn))
    hits = metric(server, "tether_ws_cache_hits_total")
    conn.response.create(model="m", input="fork it", previous_response_id=root["id"], store=False, stream_id="fork")
    conn.response.create(model="m", input="and go on", previous_response_id=root["id"], store=False,
                         stream_id="source")
    events = collect(conn, terminals=2)
    lanes = by_lane(events)
    for lane in ("fork", "source"):
        response = completed(lanes[lane])
        assert output_text(response) == "second turn"  # both saw the root's answer
        assert response["previous_response_id"] == root["id"]
        assert response["usage"]["input_tokens_details"]["cached_tokens"] > 0
    assert metric(server, "tether_ws_cache_hits_total") == hits + 2
    # The fork's result is now the fork lane's latest: the default lane can fork from it in turn.
    conn.response.create(model="m", input="third", previous_response_id=completed(lanes["fork"])["id"], store=False)
    first = recv(conn)
    assert first["type"] == "response.created" and "stream_id" not in first
    assert completed(collect(conn))["status"] == "completed"
