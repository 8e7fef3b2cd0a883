"""Background responses (`background: true`): run detached from the request, retrievable,
resumable as SSE from any sequence number, and cancellable while running."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from ..api.items import Item
from ..api.response import build_response
from ..core.book import ResponseBook
from ..core.responder import Turn, TurnEngine
from ..store.base import StoredResponse

log = logging.getLogger("tether.background")


class BackgroundRun:
    """One background response: its task, every event so far, and its latest snapshot."""

    def __init__(self, engine: TurnEngine, book: ResponseBook, turn: Turn) -> None:
        self.engine = engine
        self.book = book
        self.turn = turn
        self.owner = turn.owner
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self.done = False
        self.task = asyncio.get_running_loop().create_task(self._run())
        book.track_live(turn.response_id, self)

    @property
    def snapshot(self) -> dict[str, Any]:
        return self.turn.snapshot

    @property
    def input_items(self) -> list[Item]:
        return self.turn.input_items

    async def _publish(self, event: dict[str, Any]) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def _run(self) -> None:
        try:
            async for event in self.engine.run(self.turn):
                await self._publish(event)
        except asyncio.CancelledError:
            self._mark_cancelled()
        except Exception:
            log.exception("background response %s failed", self.turn.response_id)
        finally:
            self.done = True
            async with self._changed:
                self._changed.notify_all()
            self.book.untrack_live(self.turn.response_id)

    def _mark_cancelled(self) -> None:
        turn = self.turn
        turn.session.broken = True
        turn.snapshot = build_response(
            turn.request, turn.response_id, turn.created_at, status="cancelled", completed_at=int(time.time())
        )
        self.book.persist_later(StoredResponse(turn.snapshot, turn.input_items, turn.owner))

    def cancel(self) -> None:
        if not self.done:
            self.task.cancel()

    async def wait_started(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self.events) or self.done)

    async def follow(self, starting_after: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every event after `starting_after`, then new ones as they come, until the run ends."""
        index = 0 if starting_after is None else starting_after + 1
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda seen=index: len(self.events) > seen or self.done)
                batch = self.events[index:]
            for event in batch:
                yield event
            index += len(batch)
            if self.done and index >= len(self.events):
                return
