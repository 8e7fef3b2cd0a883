"""The engine pool's placement rules without sockets: prefix hashing, the affinity table, and the
choice of replica (least loaded, healthy first)."""

from __future__ import annotations

from typing import Any

from tether.backends.chat_render import render_items
from tether.backends.upstream_affinity import AffinityTable, PrefixHasher, prefix_hashes
from tether.backends.upstream_pool import EnginePool, PoolSettings

USER = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Oslo?"}]}
ANSWER = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]}
CALL = {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city": "Oslo"}'}
OUTPUT = {"type": "function_call_output", "call_id": "c1", "output": "sunny"}


def rendered(*items: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    render_items(messages, items)
    return messages


def test_incremental_hashes_equal_hashes_from_scratch() -> None:
    messages = rendered(USER)
    hasher = PrefixHasher()
    first = hasher.update(messages)
    render_items(messages, [ANSWER])
    # The call joins the assistant message (copy on write): the last message is replaced, not appended.
    render_items(messages, [CALL, OUTPUT])
    later = hasher.update(messages)
    assert len(messages) == 3 and len(first) == 1 and len(later) == 2
    assert [*first, *later] == prefix_hashes(messages)


def test_a_replaced_last_message_is_hashed_again() -> None:
    messages = rendered(USER, ANSWER)
    hasher = PrefixHasher()
    before = hasher.update(messages)[-1]
    render_items(messages, [CALL])  # replaces messages[-1]: text and the call in one assistant turn
    after = hasher.update(messages)
    assert len(after) == 1 and after[0] != before and after[0] == prefix_hashes(messages)[-1]


def test_a_copied_hasher_is_independent() -> None:
    messages = rendered(USER, ANSWER)
    hasher = PrefixHasher()
    hasher.update(messages)
    twin_messages = list(messages)
    twin = hasher.copy()
    render_items(messages, [OUTPUT])
    render_items(twin_messages, [{**USER, "content": [{"type": "input_text", "text": "And Rome?"}]}])
    assert hasher.update(messages)[-1] == prefix_hashes(messages)[-1]
    assert twin.update(twin_messages)[-1] == prefix_hashes(twin_messages)[-1]
    assert prefix_hashes(messages)[-1] != prefix_hashes(twin_messages)[-1]


def test_key_order_does_not_change_a_hash() -> None:
    assert prefix_hashes([{"role": "user", "content": "x"}]) == prefix_hashes([{"content": "x", "role": "user"}])


def test_find_by_cache_key_then_longest_prefix() -> None:
    table = AffinityTable()
    one, two = table.new_conversation(), table.new_conversation()
    table.place(one, "A")
    table.place(two, "B")
    short = prefix_hashes(rendered(USER))
    long = prefix_hashes(rendered(USER, ANSWER, OUTPUT))
    table.remember(one, None, short[-1])
    table.remember(two, "key-2", long[-1])
    assert table.find(None, long) == two  # the longest known prefix wins
    assert table.find(None, long[:2]) == one
    assert table.find("key-2", short) == two  # the cache key before any prefix
    assert table.find("unknown", prefix_hashes(rendered(ANSWER))) is None


def test_place_counts_and_moves() -> None:
    table = AffinityTable()
    conversations = [table.new_conversation() for _ in range(3)]
    for conversation in conversations:
        assert table.place(conversation, "A") is None
    assert table.place(conversations[0], "B") == "A"
    assert (table.counts["A"], table.counts["B"]) == (2, 1)
    assert table.replica_of(conversations[0]) == "B"


def test_tables_are_bounded() -> None:
    table = AffinityTable(capacity=2)
    conversations = [table.new_conversation() for _ in range(3)]
    for index, conversation in enumerate(conversations):
        table.place(conversation, "A")
        table.remember(conversation, f"k{index}", None)
    assert table.counts["A"] == 2 and table.replica_of(conversations[0]) is None
    assert table.find("k0", []) is None and table.find("k2", []) == conversations[2]


def test_choose_least_loaded_healthy() -> None:
    pool = EnginePool(["http://127.0.0.1:1", "http://127.0.0.1:2/v1", "http://127.0.0.1:3/v1/chat/completions"],
                      settings=PoolSettings(health_interval=0))
    a, b, c = pool.replicas
    assert [r.url for r in pool.replicas] == [f"http://127.0.0.1:{n}/v1" for n in (1, 2, 3)]
    a.in_flight, b.in_flight, c.in_flight = 2, 1, 1
    pool.affinity.place(pool.affinity.new_conversation(), b.url)
    assert pool.choose() is c  # b and c tie on requests in flight; c has fewer conversations
    c.healthy = False
    assert pool.choose() is b
    assert pool.choose(exclude=[b]) is a
    a.healthy = b.healthy = False
    assert pool.choose() is not None  # none healthy: still try one, it may be back
    assert pool.choose(exclude=[a, b, c]) is None


def test_equally_loaded_replicas_take_turns() -> None:
    pool = EnginePool(["http://127.0.0.1:1", "http://127.0.0.1:2"], settings=PoolSettings(health_interval=0))
    assert {pool.choose() for _ in range(4)} == set(pool.replicas)


def test_one_replica_listed_twice_is_one() -> None:
    pool = EnginePool(["http://127.0.0.1:1", "http://127.0.0.1:1/v1/"], settings=PoolSettings(health_interval=0))
    assert len(pool.replicas) == 1 and not pool.pinning
