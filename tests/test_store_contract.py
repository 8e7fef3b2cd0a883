"""The store interface's semantics, the same for every store: memory, SQLite and a real PostgreSQL.

Owner scoping on every read and on every hop of a chain, items by id, delete, replace, and `save`
committed by the time it returns (a second handle on the same database sees the write at once).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tether.store import open_store
from tether.store.base import ResponseStore, StoredResponse

from .store_support import STORED_KINDS, StoreUnderTest, store_for


@pytest.fixture(params=["memory", *STORED_KINDS])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> StoreUnderTest:
    return store_for(request.param, request, tmp_path)


@pytest.fixture
async def store(target: StoreUnderTest) -> AsyncIterator[ResponseStore]:
    opened = open_store(target.spec)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def message(item_id: str, text: str) -> dict[str, Any]:
    return {"type": "message", "id": item_id, "role": "user", "content": [{"type": "input_text", "text": text}]}


def record(response_id: str, owner: str = "alice", parent: str | None = None, *, status: str = "completed",
           text: str = "answer") -> StoredResponse:
    output = [{"type": "message", "id": f"msg_out_{response_id}", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": text, "annotations": []}]}]
    response = {"id": response_id, "object": "response", "created_at": 1_700_000_000, "status": status,
                "previous_response_id": parent, "output": output, "metadata": {"k": response_id}}
    return StoredResponse(response, [message(f"msg_in_{response_id}", f"question {response_id}")], owner)


async def test_save_then_get_round_trips_for_its_owner_only(store: ResponseStore) -> None:
    saved = record("resp_a1")
    await store.save(saved)
    got = await store.get("resp_a1", "alice")
    assert got is not None
    assert got.response == saved.response and got.input_items == saved.input_items and got.owner == "alice"
    assert await store.get("resp_a1", "bob") is None
    assert await store.get("resp_missing", "alice") is None


async def test_chain_newest_first_with_items(store: ResponseStore) -> None:
    await store.save(record("resp_c1"))
    await store.save(record("resp_c2", parent="resp_c1"))
    await store.save(record("resp_c3", parent="resp_c2", text="third"))
    chain = await store.get_chain("resp_c3", "alice")
    assert chain is not None
    assert [link.id for link in chain] == ["resp_c3", "resp_c2", "resp_c1"]
    assert [link.previous_response_id for link in chain] == ["resp_c2", "resp_c1", None]
    assert chain[0].output[0]["content"][0]["text"] == "third"
    assert chain[2].input_items == [message("msg_in_resp_c1", "question resp_c1")]
    assert all(link.status == "completed" and link.nbytes > 0 for link in chain)


async def test_chain_checks_the_owner_on_every_hop(store: ResponseStore) -> None:
    await store.save(record("resp_o1", owner="alice"))
    await store.save(record("resp_o2", owner="bob", parent="resp_o1"))  # a foreign hop in the middle
    await store.save(record("resp_o3", owner="alice", parent="resp_o2"))
    assert await store.get_chain("resp_o3", "alice") is None
    assert await store.get_chain("resp_o2", "bob") is None
    assert await store.get_chain("resp_o3", "bob") is None
    assert await store.get_chain("resp_o1", "alice") is not None


async def test_chain_with_a_missing_ancestor_is_none(store: ResponseStore) -> None:
    await store.save(record("resp_m2", parent="resp_m1_never_saved"))
    assert await store.get_chain("resp_m2", "alice") is None
    assert await store.get_chain("resp_nothing", "alice") is None


async def test_items_by_id_for_their_owner(store: ResponseStore) -> None:
    await store.save(record("resp_i1"))
    assert await store.get_item("msg_in_resp_i1", "alice") == message("msg_in_resp_i1", "question resp_i1")
    output_item = await store.get_item("msg_out_resp_i1", "alice")
    assert output_item is not None and output_item["role"] == "assistant"
    assert await store.get_item("msg_in_resp_i1", "bob") is None
    assert await store.get_item("msg_nope", "alice") is None


async def test_delete_removes_the_response_and_its_items(store: ResponseStore) -> None:
    await store.save(record("resp_d1"))
    assert await store.delete("resp_d1", "bob") is False  # another owner's delete leaves it alone
    assert await store.get("resp_d1", "alice") is not None
    assert await store.delete("resp_d1", "alice") is True
    assert await store.get("resp_d1", "alice") is None
    assert await store.get_item("msg_in_resp_d1", "alice") is None
    assert await store.delete("resp_d1", "alice") is False


async def test_saving_again_replaces(store: ResponseStore) -> None:
    await store.save(record("resp_r1", status="in_progress", text="partial"))
    await store.save(record("resp_r1", status="completed", text="final"))
    got = await store.get("resp_r1", "alice")
    assert got is not None and got.response["status"] == "completed"
    chain = await store.get_chain("resp_r1", "alice")
    assert chain is not None and [link.status for link in chain] == ["completed"]
    assert chain[0].output[0]["content"][0]["text"] == "final"


async def test_the_replica_and_the_runner_are_kept(store: ResponseStore) -> None:
    placed = record("resp_p1")
    placed.placement, placed.runner = "http://replica-2:8080/v1", "runner-4f2a"
    await store.save(placed)
    await store.save(record("resp_p2", parent="resp_p1"))
    got = await store.get("resp_p1", "alice")
    assert got is not None and (got.placement, got.runner) == ("http://replica-2:8080/v1", "runner-4f2a")
    plain = await store.get("resp_p2", "alice")
    assert plain is not None and (plain.placement, plain.runner) == (None, None)
    chain = await store.get_chain("resp_p2", "alice")
    assert chain is not None and [link.placement for link in chain] == [None, "http://replica-2:8080/v1"]


async def test_deletions_are_counted_and_seen_by_saves_and_chain_reads(store: ResponseStore) -> None:
    """What a process's memory of recent chains checks before it serves one (`core/recent.py`)."""
    before = await store.deletions()
    assert await store.save(record("resp_n1")) == before
    assert await store.save(record("resp_n2", parent="resp_n1")) == before
    assert await store.delete("resp_n2", "bob") is False  # nothing deleted: not counted
    assert await store.delete("resp_never", "alice") is False
    assert await store.deletions() == before
    assert await store.delete("resp_n2", "alice") is True
    assert await store.deletions() == before + 1
    chain = await store.get_chain("resp_n1", "alice")
    assert chain is not None and chain[0].deletions == before + 1
    assert await store.save(record("resp_n3", parent="resp_n1")) == before + 1


async def test_a_response_with_no_item_ids_is_saved_and_chained(store: ResponseStore) -> None:
    bare = StoredResponse({"id": "resp_b1", "object": "response", "status": "completed", "output": []},
                          [{"type": "message", "role": "user", "content": "hi"}], "alice")
    await store.save(bare)
    chain = await store.get_chain("resp_b1", "alice")
    assert chain is not None and chain[0].input_items == bare.input_items and chain[0].output == []


async def test_an_item_id_given_twice_in_one_response_keeps_the_last(store: ResponseStore) -> None:
    twice = record("resp_t1")
    twice.input_items = [message("msg_same", "first"), message("msg_same", "second")]
    await store.save(twice)
    assert await store.get_item("msg_same", "alice") == message("msg_same", "second")


@pytest.mark.parametrize("kind", STORED_KINDS)
async def test_save_is_committed_when_it_returns(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """What another process sees: a second handle on the same database reads the write at once."""
    target = store_for(kind, request, tmp_path)
    writer, reader = open_store(target.spec), open_store(target.spec)
    await writer.open()
    await reader.open()
    try:
        for n in range(5):
            parent = f"resp_x{n - 1}" if n else None
            await writer.save(record(f"resp_x{n}", parent=parent))
            chain = await reader.get_chain(f"resp_x{n}", "alice")
            assert chain is not None and len(chain) == n + 1
        assert await reader.delete("resp_x4", "alice") is True
        assert await writer.get("resp_x4", "alice") is None
    finally:
        await writer.close()
        await reader.close()
