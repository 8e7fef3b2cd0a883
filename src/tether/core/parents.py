"""Parent resolution, the one rule for every transport: the connection cache, then the store, else
`previous_response_not_found`. HTTP passes no cache; a WebSocket lane passes its connection's."""

from __future__ import annotations

from dataclasses import dataclass

from ..api.errors import previous_response_not_found
from .book import ResponseBook
from .connection_cache import ConnectionCache, LaneKey
from .metrics import METRICS, labelled
from .state import ResponseState


@dataclass(frozen=True, slots=True)
class Parent:
    """The response a create continues, and how it was found."""

    state: ResponseState
    #: the parent is another lane's cached latest: it stays there, the new lane forks from it
    fork: bool
    #: "cache" (the connection's memory) or "store" (hydrated from persisted responses)
    source: str


async def resolve_parent(
    previous_response_id: str | None,
    owner: str,
    book: ResponseBook,
    *,
    transport: str,
    cache: ConnectionCache | None = None,
    lane: LaneKey = None,
) -> Parent | None:
    """The parent named by `previous_response_id`, or None for a new conversation."""
    if previous_response_id is None:
        return None
    if cache is not None:
        cached = cache.get(previous_response_id)
        if cached is not None:
            return Parent(cached, fork=cached.lane != lane, source="cache")
    hydrated = await book.hydrate(previous_response_id, owner)
    if hydrated is None:
        raise previous_response_not_found(previous_response_id)
    labelled(METRICS.store_hydrations, transport).inc()
    return Parent(hydrated, fork=False, source="store")
