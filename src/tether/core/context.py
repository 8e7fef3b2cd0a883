"""`Context`: a conversation's items as a persistent chain, so a continuation appends in O(new items).

A child shares its parent's chain instead of copying it; the full list is built only when something
really needs all of it (a fresh backend session, an `input_tokens` count).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..api.items import Item

if TYPE_CHECKING:
    from .conversation_settings import ConversationSettings


class Context:
    __slots__ = ("items", "length", "parent", "settings")

    def __init__(self, parent: Context | None = None, items: tuple[Item, ...] = ()) -> None:
        self.parent = parent
        self.items = items
        self.length: int = (parent.length if parent else 0) + len(items)
        #: what the items up to here set (`conversation_settings.settings_of`), folded on first use
        self.settings: ConversationSettings | None = None

    def extend(self, items: Iterable[Item]) -> Context:
        added = tuple(items)
        if not added:
            return self
        return Context(self, added)

    def to_list(self) -> list[Item]:
        """Every item, oldest first (walks the chain: O(length))."""
        segments: list[tuple[Item, ...]] = []
        node: Context | None = self
        while node is not None:
            if node.items:
                segments.append(node.items)
            node = node.parent
        out: list[Item] = []
        for segment in reversed(segments):
            out.extend(segment)
        return out

    def __len__(self) -> int:
        return self.length


EMPTY = Context()
