"""`ResponseBook`: every response the process knows of, across transports.

It fronts the store with two in-memory maps: responses whose terminal event was sent but whose write
has not landed yet (so a `GET` right after completion finds them), and background responses still
running (so they can be retrieved and cancelled). It also hydrates a chain from the store.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from ..api.items import Item
from ..store.base import ChainLink, ResponseStore, StoredResponse
from .context import EMPTY, Context
from .state import ResponseState

log = logging.getLogger("tether.book")


class LiveResponse(Protocol):
    """A response still running in the background."""

    owner: str

    @property
    def snapshot(self) -> dict[str, Any]: ...

    @property
    def input_items(self) -> list[Item]: ...

    def cancel(self) -> None: ...


class ResponseBook:
    def __init__(self, store: ResponseStore) -> None:
        self.store = store
        self._unwritten: dict[str, StoredResponse] = {}
        self._live: dict[str, LiveResponse] = {}
        self._writes: set[asyncio.Task[None]] = set()

    # -- writes -------------------------------------------------------------------------------
    def persist_later(self, record: StoredResponse) -> None:
        """Queue a write; readable at once, on disk soon. Called after the terminal event is sent."""
        self._unwritten[record.id] = record
        task = asyncio.get_running_loop().create_task(self._write(record))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, record: StoredResponse) -> None:
        try:
            await self.store.save(record)
        except Exception:
            log.exception("could not persist response %s", record.id)
            return  # keep it readable from memory rather than lose it
        if self._unwritten.get(record.id) is record:
            del self._unwritten[record.id]

    async def flush(self) -> None:
        """Wait for queued writes (at shutdown, and in tests)."""
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    def track_live(self, response_id: str, live: LiveResponse) -> None:
        self._live[response_id] = live

    def untrack_live(self, response_id: str) -> None:
        self._live.pop(response_id, None)

    def live(self, response_id: str, owner: str) -> LiveResponse | None:
        entry = self._live.get(response_id)
        return entry if entry is not None and entry.owner == owner else None

    # -- reads --------------------------------------------------------------------------------
    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        live = self.live(response_id, owner)
        if live is not None:
            return StoredResponse(live.snapshot, live.input_items, owner)
        record = self._unwritten.get(response_id)
        if record is not None:
            return record if record.owner == owner else None
        return await self.store.get(response_id, owner)

    async def delete(self, response_id: str, owner: str) -> bool:
        record = self._unwritten.get(response_id)
        if record is not None and record.owner == owner:
            del self._unwritten[response_id]
            await self.flush()
            await self.store.delete(response_id, owner)
            return True
        return await self.store.delete(response_id, owner)

    async def get_item(self, item_id: str, owner: str) -> Item | None:
        for record in self._unwritten.values():
            if record.owner != owner:
                continue
            for item in [*record.input_items, *record.response.get("output", [])]:
                if item.get("id") == item_id:
                    found: Item = item
                    return found
        return await self.store.get_item(item_id, owner)

    async def hydrate(self, response_id: str, owner: str) -> ResponseState | None:
        """Rebuild a stored chain's context, checking the owner on every hop. Responses not on disk
        yet come from memory; the rest of the chain comes from the store in one call."""
        links: list[ChainLink] = []
        next_id: str | None = response_id
        while next_id is not None:
            record = self._unwritten.get(next_id)
            if record is None or record.owner != owner:
                break
            links.append(ChainLink.of(record))
            next_id = record.previous_response_id
        if next_id is not None:
            if self.live(next_id, owner) is not None:
                return None  # still running: not a parent yet
            stored = await self.store.get_chain(next_id, owner)
            if stored is None:
                return None
            links.extend(stored)
        if any(link.status in ("queued", "in_progress") for link in links):
            return None
        context: Context = EMPTY
        for link in reversed(links):
            context = context.extend(link.input_items).extend(link.output)
        head = links[0]
        # A hydrated parent needs only its id, output and store flag; the full object stays in the store.
        response = {"id": head.id, "object": "response", "status": head.status, "output": head.output, "store": True}
        nbytes = sum(link.nbytes for link in links)
        return ResponseState(response, head.input_items, context, owner, nbytes=nbytes)
