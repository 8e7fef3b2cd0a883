"""An in-process store: for tests, and for servers that need nothing to outlive them."""

from __future__ import annotations

from ..api.items import Item
from .base import ResponseStore, StoredResponse


class MemoryStore(ResponseStore):
    def __init__(self) -> None:
        self._responses: dict[str, StoredResponse] = {}
        self._items: dict[tuple[str, str], Item] = {}
        self._deletions = 0

    async def save(self, record: StoredResponse) -> int:
        self._responses[record.id] = record
        for item_id, item in record.items_by_id().items():
            self._items[(record.owner, item_id)] = item
        return self._deletions

    async def deletions(self) -> int:
        return self._deletions

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        record = self._responses.get(response_id)
        return record if record is not None and record.owner == owner else None

    async def delete(self, response_id: str, owner: str) -> bool:
        record = await self.get(response_id, owner)
        if record is None:
            return False
        del self._responses[response_id]
        for item_id in record.items_by_id():
            self._items.pop((owner, item_id), None)
        self._deletions += 1
        return True

    async def get_item(self, item_id: str, owner: str) -> Item | None:
        return self._items.get((owner, item_id))
