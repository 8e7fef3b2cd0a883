"""`SlotTable`: which conversation's KV each llama.cpp sequence holds, and which one to give up next.

A slot is one sequence of the context. It holds the KV of exactly `tokens` (what was evaluated in it),
and is either serving an active turn (`turn` set) or idle, still holding a finished conversation so
that its continuation, or any prompt sharing a prefix with it, starts from it at no cost. Idle slots
are given up least recently used first; a slot whose conversation was released goes before any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .kv_store import common_prefix


@dataclass(slots=True)
class Slot:
    seq: int
    tokens: list[int] = field(default_factory=list)
    turn: Any = None  # the active turn it serves (scheduler.Turn), None when idle
    used: int = 0  # the table's clock at its last use: lower is older
    released: bool = False  # its conversation's session is gone: nothing will continue it
    copy_pending: bool = False  # cells copied in from another slot land at the next decode

    @property
    def idle(self) -> bool:
        return self.turn is None


class SlotTable:
    def __init__(self, count: int) -> None:
        self.slots = [Slot(seq) for seq in range(count)]
        self._clock = 0

    def __len__(self) -> int:
        return len(self.slots)

    def touch(self, slot: Slot) -> None:
        self._clock += 1
        slot.used = self._clock
        slot.released = False

    def best(self, prompt: Sequence[int]) -> tuple[Slot | None, int]:
        """The slot (busy or idle) sharing the longest prefix with `prompt`, and that length."""
        best: Slot | None = None
        length = 0
        for slot in self.slots:
            shared = common_prefix(slot.tokens, prompt)
            if shared > length:
                best, length = slot, shared
        return best, length

    def victim(self, keep: Slot | None = None) -> Slot | None:
        """The idle slot to give up for another conversation: an empty one, else a released one, else the
        least recently used; never `keep`. None when every slot serves a turn."""
        # a slot with cells still to come from a copy cannot be written before the next decode lands it
        idle = [slot for slot in self.slots if slot.idle and slot is not keep and not slot.copy_pending]
        if not idle:
            return None
        return min(idle, key=lambda slot: (bool(slot.tokens), not slot.released, slot.used, slot.seq))

    def release(self, tokens: Sequence[int]) -> bool:
        """Mark the idle slot holding `tokens` (all, or all but the unevaluated last one) as released."""
        for slot in self.slots:
            n = len(slot.tokens)
            if slot.idle and n and len(tokens) - 1 <= n <= len(tokens) and common_prefix(slot.tokens, tokens) == n:
                slot.released = True
                return True
        return False

    @property
    def busy(self) -> int:
        return sum(not slot.idle for slot in self.slots)

    @property
    def resident_tokens(self) -> int:
        return sum(len(slot.tokens) for slot in self.slots)
