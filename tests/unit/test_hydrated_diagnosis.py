"""A continuation of a stored parent (HTTP, or a new WebSocket) reads the store once: the chain query
brings the head's whole stored Response too, so the prompt-cache diagnosis compares with its settings
without a second read. Run against a real SQLite file and the memory store."""

from __future__ import annotations

from typing import Any

import pytest

from tether.api.request import parse_create
from tether.api.response import request_echo
from tether.core.book import ResponseBook
from tether.core.cache_baseline import diagnose
from tether.core.context import EMPTY
from tether.core.parents import resolve_parent
from tether.store.base import ResponseStore, StoredResponse

from .store_calls import CountingReads

OWNER = "owner-a"
TOOL = {"type": "function", "name": "run", "parameters": {"type": "object", "properties": {}}, "strict": True}


def parent_record(response_id: str) -> StoredResponse:
    request = parse_create({"model": "m", "input": "hi", "tools": [TOOL], "instructions": "Be brief."})
    response = {"id": response_id, "object": "response", "status": "completed", "previous_response_id": None,
                "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                            "content": [{"type": "output_text", "text": "hello", "annotations": []}]}],
                **request_echo(request).fields}
    return StoredResponse(response, [{"type": "message", "role": "user", "content": "hi"}], OWNER)


@pytest.mark.parametrize(("body", "verdict"), [
    ({"tools": [TOOL], "instructions": "Be brief."}, "cache_hit"),
    ({"tools": [], "instructions": "Be brief."}, "tools_changed"),
])
async def test_a_stored_parent_is_diagnosed_from_the_one_chain_read(
    store: ResponseStore, body: dict[str, Any], verdict: str
) -> None:
    await store.save(parent_record("resp_parent"))
    book = ResponseBook(store)
    reads = CountingReads(store, ("get", "get_chain"))
    request = parse_create({"model": "m", "input": "next", "previous_response_id": "resp_parent", **body})
    parent = await resolve_parent(request.previous_response_id, OWNER, book, transport="http")
    assert parent is not None and parent.source == "store"
    assert parent.state.stored_response is not None  # the head's whole Response came with the chain
    result = await diagnose(request, request_echo(request).fields, EMPTY, OWNER, parent, book)
    assert (result.reason or result.type) == verdict
    assert reads.calls == ["get_chain"]  # one store read for the whole continuation


async def test_a_chain_of_another_owner_brings_nothing(store: ResponseStore) -> None:
    await store.save(parent_record("resp_parent"))
    assert await store.get_chain("resp_parent", "owner-b") is None
    links = await store.get_chain("resp_parent", OWNER)
    assert links is not None and links[0].head_response is not None
