"""Which engine replica each conversation is on, and how a request that brings no live session finds
its conversation again. Sans-I/O: plain tables, bounded, least recently used first out.

A conversation is found, in this order, by:

1. the live session that holds it (a WebSocket lane; the session keeps its conversation id);
2. `prompt_cache_key`, which clients such as Codex set to one value per conversation;
3. the hash of a prefix of its chat messages: after each turn the hash of all its messages, the
   model's answer included, is recorded; a later request (a full-context replay, or an HTTP
   continuation rebuilt from the store) starts with exactly those messages, so the longest prefix
   already recorded names its conversation. A prefix without an answer is never recorded: two new
   conversations that open with the same message are two conversations.

Messages are hashed incrementally (a live session hashes only what it added), and only when the
pool has more than one replica: with one there is nothing to choose.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import Any

import orjson

DEFAULT_CAPACITY = 100_000


def _message_bytes(message: dict[str, Any]) -> bytes:
    # A separator after each message, so that two messages never hash like one.
    return orjson.dumps(message, option=orjson.OPT_SORT_KEYS) + b"\x1e"


class PrefixHasher:
    """The running hash of a session's chat messages, one digest per message boundary.

    The list only grows, except that its last message may be replaced (a tool call joins the
    assistant message before it, copy on write): then that one message is hashed again. So a live
    session hashes only what it added, and a fresh one hashes everything once.
    """

    __slots__ = ("_before_last", "_count", "_hasher", "_last")

    def __init__(self) -> None:
        self._hasher = hashlib.blake2b(digest_size=16)  # over messages[:_count]
        self._before_last = self._hasher.copy()  # over messages[:_count - 1]
        self._count = 0
        self._last: object = None  # messages[_count - 1], to see whether it was replaced

    def copy(self) -> PrefixHasher:
        twin = PrefixHasher()
        twin._hasher, twin._before_last = self._hasher.copy(), self._before_last.copy()
        twin._count, twin._last = self._count, self._last
        return twin

    def update(self, messages: Sequence[dict[str, Any]]) -> list[bytes]:
        """Hash what is new in `messages`; the digest of the prefix at each new boundary, oldest first."""
        if self._count > len(messages):  # not a continuation of what was hashed: start over
            self._hasher, self._count = hashlib.blake2b(digest_size=16), 0
        elif self._count and messages[self._count - 1] is not self._last:
            self._hasher = self._before_last.copy()
            self._count -= 1
        digests: list[bytes] = []
        for message in messages[self._count :]:
            self._before_last = self._hasher.copy()
            self._hasher.update(_message_bytes(message))
            digests.append(self._hasher.digest())
        self._count = len(messages)
        self._last = messages[-1] if messages else None
        return digests


def prefix_hashes(messages: Sequence[dict[str, Any]]) -> list[bytes]:
    """The digest of `messages[:i + 1]` for each i (what a fresh `PrefixHasher` returns)."""
    return PrefixHasher().update(messages)


class AffinityTable:
    """Conversation ids by key (cache key or prefix hash), and the replica of each conversation."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._by_key: OrderedDict[str | bytes, str] = OrderedDict()
        self._replica_of: OrderedDict[str, str] = OrderedDict()
        #: conversations per replica name
        self.counts: Counter[str] = Counter()
        self._ids = itertools.count(1)

    def new_conversation(self) -> str:
        return f"c{next(self._ids)}"

    def find(self, cache_key: str | None, prefixes: Sequence[bytes]) -> str | None:
        """The conversation a request without a live session continues, if any is known."""
        if cache_key is not None:
            found = self._by_key.get(cache_key)
            if found is not None and found in self._replica_of:
                return found
        for digest in reversed(prefixes):  # the longest known prefix is the closest relative
            found = self._by_key.get(digest)
            if found is not None and found in self._replica_of:
                return found
        return None

    def remember(self, conversation: str, cache_key: str | None, prefix: bytes | None) -> None:
        """Keys under which later requests of `conversation` will find it."""
        for key in (cache_key, prefix):
            if key is not None:
                self._by_key[key] = conversation
                self._by_key.move_to_end(key)
        while len(self._by_key) > self.capacity:
            self._by_key.popitem(last=False)

    def replica_of(self, conversation: str) -> str | None:
        replica = self._replica_of.get(conversation)
        if replica is not None:
            self._replica_of.move_to_end(conversation)
        return replica

    def place(self, conversation: str, replica: str) -> str | None:
        """Put `conversation` on `replica`; returns the replica it was on before (None if new)."""
        before = self._replica_of.get(conversation)
        if before == replica:
            self._replica_of.move_to_end(conversation)
            return before
        if before is not None:
            self.counts[before] -= 1
        self._replica_of[conversation] = replica
        self._replica_of.move_to_end(conversation)
        self.counts[replica] += 1
        while len(self._replica_of) > self.capacity:
            _, gone = self._replica_of.popitem(last=False)
            self.counts[gone] -= 1
        return before
