"""Counting which store methods a piece of work calls (the real store's methods, wrapped in place)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.store.base import ResponseStore


class CountingReads:
    """The names of the store calls made since this was made, in order; a call made inside another
    (such as the memory store's chain walk, which calls `get` and `deletions`) is part of that one."""

    def __init__(self, store: ResponseStore, names: Sequence[str]) -> None:
        self.calls: list[str] = []
        self.depth = 0
        for name in names:
            original = getattr(store, name)

            async def counted(*args: Any, _name: str = name, _original: Any = original) -> Any:
                if self.depth == 0:
                    self.calls.append(_name)
                self.depth += 1
                try:
                    return await _original(*args)
                finally:
                    self.depth -= 1

            setattr(store, name, counted)
