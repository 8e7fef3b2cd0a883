"""`TurnControl`: what a WebSocket client may ask of a response while it generates: stop it now
(`response.interrupt`) or steer it (`response.steer`: stop at a safe boundary, continue with new input).

The connection records the request here and wakes the turn; the turn engine acts on it between deltas
and emits the events that belong to the response's own stream (accepted, interrupted)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ..api.ids import new_id
from ..api.items import Item
from ..backends.base import Delta

MAX_PENDING_STEERS = 8


@dataclass(slots=True)
class Steer:
    """One accepted steering submission: owned by the server until a successor commits it."""

    previous_response_id: str
    items: list[Item]
    raw_input: Any
    id: str = field(default_factory=lambda: new_id("steer"))
    #: `response.steer.accepted` has been emitted in the response's stream
    announced: bool = False


class TurnControl:
    def __init__(self) -> None:
        #: "interrupted" or "steered" once asked; None while the turn runs undisturbed
        self.stop_reason: str | None = None
        self.steers: list[Steer] = []
        #: set by the turn engine while the model generates: outside it, nothing can be stopped
        self.generating = False
        self.finished = False
        self._wake: Callable[[], None] | None = None

    def attach(self, wake: Callable[[], None] | None) -> None:
        self._wake = wake

    def interrupt(self) -> bool:
        """Ask the turn to stop at once, discarding its partial item. False if it no longer generates."""
        if not self.generating or self.stop_reason == "interrupted":
            return False
        self.stop_reason = "interrupted"
        self._notify()
        return True

    def steer(self, steer: Steer) -> None:
        self.steers.append(steer)
        if self.generating and self.stop_reason is None:
            self.stop_reason = "steered"
        self._notify()

    def unannounced(self) -> list[Steer]:
        fresh = [steer for steer in self.steers if not steer.announced]
        for steer in fresh:
            steer.announced = True
        return fresh

    def _notify(self) -> None:
        if self._wake is not None:
            self._wake()


class Wake:
    """What a controlled stream yields when the control was touched: look at it between deltas."""


WAKE = Wake()


@dataclass(slots=True)
class _Failed:
    error: BaseException


class _Relay:
    """The feeder's items for the one consumer: a deque, and one future while the consumer waits.
    (asyncio.Queue's locks, loop checks and its `Event` cost more per turn than the relay's whole job.)"""

    __slots__ = ("items", "waiter")

    def __init__(self) -> None:
        self.items: deque[Delta | Wake | _Failed | None] = deque()
        self.waiter: asyncio.Future[None] | None = None

    def put(self, item: Delta | Wake | _Failed | None) -> None:
        self.items.append(item)
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Delta | Wake | _Failed | None:
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        return self.items.popleft()


async def controlled(stream: AsyncIterator[Delta], control: TurnControl) -> AsyncGenerator[Delta | Wake, None]:
    """The backend's deltas, interleaved with `WAKE` whenever the control is touched, even while the
    backend is blocked (a long prefill). Leaving the loop cancels the backend's generation."""
    relay = _Relay()

    async def feed() -> None:
        try:
            async for delta in stream:
                relay.put(delta)
        except asyncio.CancelledError:
            return
        except Exception as exc:  # the turn engine decides what a backend failure becomes
            relay.put(_Failed(exc))
            return
        relay.put(None)

    feeder = asyncio.get_running_loop().create_task(feed())
    control.attach(lambda: relay.put(WAKE))
    try:
        while True:
            item = await relay.get()
            if item is None:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        control.attach(None)
        if not feeder.done():
            feeder.cancel()  # the backend stops at its next await: its work stops too
        await asyncio.gather(feeder, return_exceptions=True)
