"""Background responses (`background: true`): run detached from the request, retrievable, resumable
as SSE from any sequence number, cancellable while running, and never lost to a restart.

A background response is recorded (`queued`) before the client gets its id. Cancellation, whether a
client's or the server's at shutdown, goes through the turn engine's own path, which records the
response as `cancelled`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

from ..api.items import Item
from .book import ResponseBook
from .responder import Turn, TurnEngine

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
        self.task: asyncio.Task[None] | None = None

    @staticmethod
    async def start(engine: TurnEngine, book: ResponseBook, turn: Turn) -> BackgroundRun:
        """Record the response as queued (so its id survives a restart), then run it."""
        run = BackgroundRun(engine, book, turn)
        book.track_live(turn.response_id, run)
        run.task = asyncio.get_running_loop().create_task(run._run())
        await run._wait_started()
        return run

    @property
    def snapshot(self) -> dict[str, Any]:
        return self.turn.snapshot

    @property
    def input_items(self) -> list[Item]:
        return self.turn.input_items

    async def _publish(self, event: dict[str, Any]) -> None:
        if event["type"] == "response.created":
            await self.book.save(self.turn.record())  # queued: on record before the client has the id
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def _run(self) -> None:
        try:
            async with contextlib.aclosing(self.engine.run(self.turn)) as events:
                async for event in events:
                    await self._publish(event)
        except asyncio.CancelledError:
            pass  # the engine recorded the cancellation
        except Exception:
            log.exception("background response %s failed", self.turn.response_id)
        finally:
            self.done = True
            async with self._changed:
                self._changed.notify_all()
            self.book.untrack_live(self.turn.response_id)

    async def cancel(self) -> None:
        if self.task is not None and not self.done:
            self.task.cancel()
            await asyncio.wait({self.task})

    async def _wait_started(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self.events) or self.done)

    def _has_more(self, seen: int) -> bool:
        return len(self.events) > seen or self.done

    async def follow(self, starting_after: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every event after `starting_after`, then new ones as they come, until the run ends."""
        index = 0 if starting_after is None else starting_after + 1
        while True:
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._has_more, index))
                batch = self.events[index:]
            for event in batch:
                yield event
            index += len(batch)
            if self.done and index >= len(self.events):
                return


async def drain_background(book: ResponseBook, grace_seconds: float) -> None:
    """At shutdown: let running background responses finish within the grace, then cancel the rest
    (each is recorded as `cancelled`)."""
    runs = [run for run in book.live_responses() if isinstance(run, BackgroundRun) and run.task is not None]
    tasks = {run.task for run in runs if run.task is not None}
    if not tasks:
        return
    await asyncio.wait(tasks, timeout=grace_seconds)
    await asyncio.gather(*(run.cancel() for run in runs), return_exceptions=True)
