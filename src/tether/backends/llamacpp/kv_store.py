"""`KVStore`: parked KV states of llama.cpp sequence 0, in host memory, within a byte budget.

An entry is the KV state of exactly `tokens`; it serves any prompt that shares a prefix with them (a
lane's continuation shares all of them; a fresh HTTP request with the same history, most). The least
recently used entry goes first when the budget is exceeded. An evicted conversation is still served
correctly: its prompt is re-evaluated, it only costs time.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the shared prefix; compares in chunks so that long equal runs stay in C."""
    n = min(len(a), len(b))
    i = 0
    while i < n:
        j = min(i + 256, n)
        if list(a[i:j]) == list(b[i:j]):
            i = j
            continue
        while a[i] == b[i]:
            i += 1
        return i
    return n


@dataclass(slots=True)
class ParkedState:
    tokens: tuple[int, ...]
    data: Any  # a ctypes uint8 array, as llama_state_seq_get_data filled it
    size: int | None = None  # the bytes of `data` in use, if it is a larger (reused) buffer

    @property
    def nbytes(self) -> int:
        return ctypes.sizeof(self.data) if self.size is None else self.size


class KVStore:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.total_bytes = 0
        self.evictions = 0
        self._entries: OrderedDict[int, ParkedState] = OrderedDict()
        self._next_key = 0

    def __len__(self) -> int:
        return len(self._entries)

    def fits(self, nbytes: int) -> bool:
        return nbytes <= self.budget_bytes

    def covers(self, tokens: Sequence[int]) -> bool:
        """Whether some entry already holds `tokens` (or a continuation of them)."""
        n = len(tokens)
        return any(len(e.tokens) >= n and common_prefix(e.tokens, tokens) == n for e in self._entries.values())

    def put(self, state: ParkedState) -> None:
        """Keep `state`; entries it extends are dropped (it serves every prompt they served)."""
        if not self.fits(state.nbytes):
            return
        for key, entry in list(self._entries.items()):
            size = len(entry.tokens)
            if size <= len(state.tokens) and common_prefix(entry.tokens, state.tokens) == size:
                self._drop(key)
        key = self._next_key
        self._next_key += 1
        self._entries[key] = state
        self.total_bytes += state.nbytes
        while self.total_bytes > self.budget_bytes and self._entries:
            self._drop(next(iter(self._entries)))
            self.evictions += 1

    def best(self, prompt: Sequence[int]) -> tuple[int | None, int]:
        """The entry sharing the longest prefix with `prompt` (its key, or None) and that length."""
        best_key, best_len = None, 0
        for key, entry in self._entries.items():
            shared = common_prefix(entry.tokens, prompt)
            if shared > best_len:
                best_key, best_len = key, shared
        return best_key, best_len

    def get(self, key: int) -> ParkedState:
        self._entries.move_to_end(key)
        return self._entries[key]

    def pop(self, key: int) -> ParkedState:
        state = self._entries[key]
        self._drop(key)
        return state

    def discard_exact(self, tokens: Sequence[int]) -> bool:
        """Drop the entry holding exactly `tokens` (a released conversation's own state)."""
        wanted = tuple(tokens)
        for key, entry in list(self._entries.items()):
            if entry.tokens == wanted:
                self._drop(key)
                return True
        return False

    def _drop(self, key: int) -> None:
        state = self._entries.pop(key)
        self.total_bytes -= state.nbytes

    def stats(self) -> dict[str, int]:
        return {
            "entries": len(self._entries),
            "bytes": self.total_bytes,
            "budget_bytes": self.budget_bytes,
            "evictions": self.evictions,
        }
