"""The recently committed responses (`core/recent.py`): a continuation of a `store: true` response this
process just committed skips the chain read, and is refused exactly when the store would refuse it (a
deletion anywhere, another owner, an unstored ancestor). Two books on one store play two processes.
Run on a real SQLite file and on the memory store."""

from __future__ import annotations

from typing import Any

import pytest

from tether.api.errors import APIError
from tether.api.request import parse_create
from tether.backends.scripted import Script, ScriptedBackend
from tether.core.book import ResponseBook
from tether.core.parents import resolve_parent
from tether.core.responder import TurnEngine
from tether.store.base import ResponseStore

from .store_calls import CountingReads

OWNER = "owner-a"
ANSWERS = [{"text": f"answer {k}"} for k in range(8)]


def engine_on(book: ResponseBook) -> TurnEngine:
    script = Script.from_dict({"turns": ANSWERS, "tokens_per_second": 1e9, "ttft_ms": 0})
    return TurnEngine(ScriptedBackend(script), book)


async def respond(engine: TurnEngine, text: str, previous: str | None = None, *, store: bool = True,
                  owner: str = OWNER) -> dict[str, Any]:
    """One HTTP-style turn: the parent resolved from the book (no connection cache), run to its end."""
    request = parse_create({"model": "m", "input": text, "previous_response_id": previous, "store": store})
    parent = await resolve_parent(request.previous_response_id, owner, engine.book, transport="http")
    turn = await engine.prepare(request, owner, parent)
    events = [event async for event in engine.run(turn)]
    final: dict[str, Any] = events[-1]["response"]
    return final


def text_of(response: dict[str, Any]) -> str:
    return str(response["output"][0]["content"][0]["text"])


async def test_a_continuation_of_a_just_committed_response_reads_no_chain(store: ResponseStore) -> None:
    engine = engine_on(ResponseBook(store))
    reads = CountingReads(store, ("get_chain", "deletions"))
    previous: str | None = None
    for k in range(4):
        response = await respond(engine, f"turn {k}", previous)
        assert text_of(response) == f"answer {k}"  # the scripted model counts the answers in its context
        previous = response["id"]
    assert reads.calls == ["deletions"] * 3  # one small read per continuation, never the chain
    assert len(engine.book.recent) == 1  # a child replaces its parent: one entry per conversation


async def test_a_deletion_on_another_process_is_seen_before_memory_is_used(store: ResponseStore) -> None:
    here, there = engine_on(ResponseBook(store)), ResponseBook(store)
    first = await respond(here, "turn 0")
    second = await respond(here, "turn 1", first["id"])
    assert await there.delete(first["id"], OWNER)  # an ancestor, deleted by the other process
    with pytest.raises(APIError) as refused:
        await respond(here, "turn 2", second["id"])
    assert refused.value.code == "previous_response_not_found"
    assert len(here.book.recent) == 0  # what was read before the deletion is no longer trusted
    head = await respond(here, "again 0")
    assert await there.delete(head["id"], OWNER)  # the head itself
    with pytest.raises(APIError):
        await respond(here, "again 1", head["id"])


async def test_a_deletion_elsewhere_of_an_unrelated_response_costs_one_chain_read(store: ResponseStore) -> None:
    here, there = engine_on(ResponseBook(store)), ResponseBook(store)
    unrelated = await respond(here, "other conversation")
    kept = await respond(here, "turn 0")
    assert await there.delete(unrelated["id"], OWNER)
    reads = CountingReads(store, ("get_chain", "deletions"))
    response = await respond(here, "turn 1", kept["id"])
    assert text_of(response) == "answer 1"
    assert reads.calls == ["deletions", "get_chain"]  # stale memory dropped, the store read instead


async def test_another_owner_cannot_continue_from_memory(store: ResponseStore) -> None:
    engine = engine_on(ResponseBook(store))
    first = await respond(engine, "turn 0")
    with pytest.raises(APIError) as refused:
        await respond(engine, "turn 1", first["id"], owner="owner-b")
    assert refused.value.code == "previous_response_not_found"


async def test_a_chain_with_an_unstored_ancestor_is_not_kept(store: ResponseStore) -> None:
    """Such a chain cannot be continued from the store; memory must not make it continuable."""
    engine = engine_on(ResponseBook(store))
    unstored = await respond(engine, "turn 0", store=False)
    with pytest.raises(APIError):
        await respond(engine, "turn 1", unstored["id"])
    assert len(engine.book.recent) == 0


async def test_the_budget_bounds_what_is_kept(store: ResponseStore) -> None:
    engine = engine_on(ResponseBook(store, recent_bytes=1))  # smaller than any context
    first = await respond(engine, "turn 0")
    assert len(engine.book.recent) == 0
    reads = CountingReads(store, ("get_chain", "deletions"))
    assert text_of(await respond(engine, "turn 1", first["id"])) == "answer 1"
    assert reads.calls == ["get_chain"]


async def test_a_retry_from_an_older_response_reads_the_store_and_gives_the_same_answer(store: ResponseStore) -> None:
    engine = engine_on(ResponseBook(store))
    first = await respond(engine, "turn 0")
    once = await respond(engine, "turn 1", first["id"])
    reads = CountingReads(store, ("get_chain", "deletions"))
    twice = await respond(engine, "turn 1", first["id"])  # the child replaced this entry
    assert text_of(twice) == text_of(once) == "answer 1"
    assert reads.calls == ["get_chain"]


@pytest.mark.parametrize(("tools", "verdict"), [([{"type": "function", "name": "run"}], "cache_hit"),
                                                ([], "tools_changed")])
async def test_a_recalled_parent_is_diagnosed_against_its_own_settings(
    store: ResponseStore, tools: list[dict[str, Any]], verdict: str
) -> None:
    engine = engine_on(ResponseBook(store))
    base = {"model": "m", "tools": [{"type": "function", "name": "run"}], "instructions": "Be brief."}
    request = parse_create({**base, "input": "turn 0"})
    first_turn = await engine.prepare(request, OWNER, None)
    first = [event async for event in engine.run(first_turn)][-1]["response"]
    reads = CountingReads(store, ("get_chain", "deletions"))
    request = parse_create({**base, "tools": tools, "input": "turn 1", "previous_response_id": first["id"]})
    parent = await resolve_parent(request.previous_response_id, OWNER, engine.book, transport="http")
    turn = await engine.prepare(request, OWNER, parent)
    diagnostics = [event async for event in engine.run(turn)][-1]["response"]["prompt_cache_diagnostics"]
    assert (diagnostics.get("reason") or diagnostics["type"]) == verdict
    assert reads.calls == ["deletions"]
