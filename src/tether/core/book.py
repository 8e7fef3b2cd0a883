"""`ResponseBook`: every response the process knows of, across transports.

It fronts the store: reads and writes go through it, and it keeps the background responses still
running (so they can be retrieved, followed and cancelled). A `store: true` response is written with
`save` before its terminal event is sent, so there is nothing in memory that the store does not have.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

from ..api.items import Item
from ..store.base import ResponseStore, StoredResponse
from .context import EMPTY, Context
from .recent import RecentResponses
from .runner import runner_alive
from .state import ResponseState

#: statuses of a response still being made
RUNNING = ("queued", "in_progress")

log = logging.getLogger("tether.book")


class LiveResponse(Protocol):
    """A response still running in the background."""

    owner: str

    @property
    def snapshot(self) -> dict[str, Any]: ...

    @property
    def input_items(self) -> list[Item]: ...

    def follow(self, starting_after: int | None = None) -> AsyncIterator[dict[str, Any]]: ...

    async def cancel(self) -> None:
        """Stop the run and wait until its cancellation is recorded."""


#: bytes of recently committed contexts a process keeps for continuations (`RecentResponses`)
RECENT_RESPONSE_BYTES = 256 * 1024 * 1024


class ResponseBook:
    def __init__(self, store: ResponseStore, recent_bytes: int = RECENT_RESPONSE_BYTES) -> None:
        self.store = store
        self.recent = RecentResponses(recent_bytes)
        self._live: dict[str, LiveResponse] = {}

    # -- writes -------------------------------------------------------------------------------
    async def save(self, record: StoredResponse) -> int:
        """Commit a response to the store; when this returns, a crash cannot lose it. Returns the store's
        count of deletions as the commit saw it."""
        return await self.store.save(record)

    def remember(self, state: ResponseState, parent: ResponseState | None, deletions: int) -> None:
        """A response just committed (its commit saw `deletions`), which a continuation may then start
        from without reading the store's chain."""
        self.recent.remember(state, parent, deletions)

    def track_live(self, response_id: str, live: LiveResponse) -> None:
        self._live[response_id] = live

    def untrack_live(self, response_id: str) -> None:
        self._live.pop(response_id, None)

    def live(self, response_id: str, owner: str) -> LiveResponse | None:
        entry = self._live.get(response_id)
        return entry if entry is not None and entry.owner == owner else None

    def live_responses(self) -> list[LiveResponse]:
        return list(self._live.values())

    # -- reads --------------------------------------------------------------------------------
    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        live = self.live(response_id, owner)
        if live is not None:
            return StoredResponse(live.snapshot, live.input_items, owner)
        record = await self.store.get(response_id, owner)
        if record is not None and record.response.get("status") in RUNNING and not runner_alive(record.runner):
            record = await self._abandoned(record)
        return record

    async def _abandoned(self, record: StoredResponse) -> StoredResponse:
        """A background response whose process died before it finished (SIGKILL, a crash): it is
        failed from now on, on record, never running forever and never missing."""
        response = {
            **record.response,
            "status": "failed",
            "error": {"code": "server_error",
                      "message": "The server stopped before this background response finished."},
        }
        failed = StoredResponse(response, record.input_items, record.owner, placement=record.placement)
        await self.store.save(failed)
        return failed

    async def delete(self, response_id: str, owner: str) -> bool:
        deleted = await self.store.delete(response_id, owner)
        if deleted:
            self.recent.forget(response_id)
        return deleted

    async def get_item(self, item_id: str, owner: str) -> Item | None:
        return await self.store.get_item(item_id, owner)

    async def hydrate(self, response_id: str, owner: str) -> ResponseState | None:
        """A stored chain's context: recalled from the recently committed responses if no deletion happened
        since (one small read), else rebuilt in one store call that checks the owner on every hop."""
        if self.live(response_id, owner) is not None:
            return None  # still running: not a parent yet
        if self.recent.holds(response_id, owner):
            recalled = self.recent.recall(response_id, owner, await self.store.deletions())
            if recalled is not None:
                return recalled
        links = await self.store.get_chain(response_id, owner)
        if links is None or any(link.status in ("queued", "in_progress") for link in links):
            return None
        context: Context = EMPTY
        for link in reversed(links):
            context = context.extend(link.input_items).extend(link.output)
        head = links[0]
        # A hydrated parent needs only its id, output and store flag; the full object stays in the store.
        response = {"id": head.id, "object": "response", "status": head.status, "output": head.output, "store": True}
        nbytes = sum(link.nbytes for link in links)
        return ResponseState(response, head.input_items, context, owner, nbytes=nbytes, placement=head.placement,
                             stored_response=head.head_response, deletions=head.deletions)
