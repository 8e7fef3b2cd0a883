"""The inner ring: the turn engine's guarantees, driven directly (no server)."""

from __future__ import annotations

import asyncio
from typing import Any

from tether.api.items import Item
from tether.api.request import parse_create
from tether.backends.scripted import Script, ScriptedBackend
from tether.core.background import BackgroundRun, drain_background
from tether.core.book import ResponseBook
from tether.core.metrics import METRICS
from tether.core.responder import TurnEngine
from tether.store.base import StoredResponse
from tether.store.memory import MemoryStore

OWNER = "owner-a"


class FailingStore(MemoryStore):
    async def save(self, record: StoredResponse) -> int:
        raise OSError("disk full")


def engine_with(store: MemoryStore, **script: Any) -> TurnEngine:
    turns = script.pop("turns", [{"text": "hello there"}])
    played = Script.from_dict({"turns": turns, "tokens_per_second": 1e9, "ttft_ms": 0, **script})
    return TurnEngine(ScriptedBackend(played), ResponseBook(store))


def responses_counted(status: str) -> float:
    return METRICS.responses.labels(status=status, transport="http")._value.get()


async def test_a_stored_response_is_committed_before_its_terminal_event() -> None:
    store = MemoryStore()
    engine = engine_with(store)
    turn = await engine.prepare(parse_create({"model": "m", "input": "hi"}), OWNER, None)
    async for event in engine.run(turn):
        if event["type"] == "response.completed":
            assert await store.get(turn.response_id, OWNER) is not None
            break


async def test_post_turn_accounting_happens_when_the_caller_stops_at_the_terminal_event() -> None:
    engine = engine_with(MemoryStore())
    before = responses_counted("completed")
    turn = await engine.prepare(parse_create({"model": "m", "input": "hi", "store": False}), OWNER, None)
    events = engine.run(turn)
    async for event in events:
        if event["type"] == "response.completed":
            break
    await events.aclose()
    assert responses_counted("completed") == before + 1
    assert turn.result is not None and turn.result.nbytes > 0


async def test_a_store_failure_fails_the_response_instead_of_acknowledging_it() -> None:
    engine = engine_with(FailingStore())
    turn = await engine.prepare(parse_create({"model": "m", "input": "hi"}), OWNER, None)
    events = [event async for event in engine.run(turn)]
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["message"] == "The response could not be stored."
    assert turn.result is None


async def test_the_session_takes_the_output_core_assembled() -> None:
    calls = [{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}]
    engine = engine_with(MemoryStore(), turns=[{"tool_calls": calls}])
    committed: list[Item] = []
    body = {"model": "m", "input": "hi", "store": False, "parallel_tool_calls": False,
            "tools": [{"type": "function", "name": name, "parameters": {"type": "object"}} for name in "ab"]}
    turn = await engine.prepare(parse_create(body), OWNER, None)
    original = turn.session.commit
    turn.session.commit = lambda output: (committed.extend(output), original(output))[1]  # type: ignore[method-assign]
    events = [event async for event in engine.run(turn)]
    output = events[-1]["response"]["output"]
    assert [item["name"] for item in output] == ["a"]  # the parallel-tool-call rule, applied once
    assert committed == output


async def test_a_cancelled_background_response_is_recorded_as_cancelled() -> None:
    store = MemoryStore()
    engine = engine_with(store, tokens_per_second=5)
    request = parse_create({"model": "m", "input": "hi", "background": True})
    turn = await engine.prepare(request, OWNER, None)
    run = await BackgroundRun.start(engine, engine.book, turn)
    assert (await store.get(turn.response_id, OWNER)) is not None  # on record while queued
    await run.cancel()
    record = await store.get(turn.response_id, OWNER)
    assert record is not None and record.response["status"] == "cancelled"


async def test_shutdown_drain_records_unfinished_background_responses_as_cancelled() -> None:
    store = MemoryStore()
    engine = engine_with(store, tokens_per_second=2)
    turn = await engine.prepare(parse_create({"model": "m", "input": "hi", "background": True}), OWNER, None)
    await BackgroundRun.start(engine, engine.book, turn)
    await asyncio.wait_for(drain_background(engine.book, grace_seconds=0.05), 5)
    record = await store.get(turn.response_id, OWNER)
    assert record is not None and record.response["status"] == "cancelled"
    assert engine.book.live(turn.response_id, OWNER) is None
