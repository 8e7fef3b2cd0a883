"""The connection-scoped cache: each lane's latest response, whole, in memory.

Bounded twice: per connection (the oldest-used other lanes go first) and per process, through a
`CacheBudget` shared by every connection (the least recently used entry anywhere goes first). What is
evicted is counted in metrics by reason; a continuation from an evicted response is
`previous_response_not_found` unless the response was stored.
"""

from __future__ import annotations

from collections import OrderedDict

from .metrics import METRICS
from .state import ResponseState

LaneKey = str | None


class CacheBudget:
    """The process-wide bound over every connection's cache."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.total = 0
        self._lru: OrderedDict[tuple[int, LaneKey], ConnectionCache] = OrderedDict()

    def touch(self, cache: ConnectionCache, lane: LaneKey) -> None:
        key = (id(cache), lane)
        self._lru[key] = cache
        self._lru.move_to_end(key)

    def forget(self, cache: ConnectionCache, lane: LaneKey) -> None:
        self._lru.pop((id(cache), lane), None)

    def enforce(self, keep: tuple[ConnectionCache, LaneKey]) -> None:
        if self.total <= self.max_bytes:
            return  # the common case: no copy of an LRU that holds every lane of every connection
        keep_key = (id(keep[0]), keep[1])
        for key in list(self._lru):
            if self.total <= self.max_bytes:
                return
            if key == keep_key:
                continue
            cache = self._lru[key]
            cache.evict_lane(key[1], reason="process_budget")


class ConnectionCache:
    def __init__(self, max_bytes: int, budget: CacheBudget) -> None:
        self.max_bytes = max_bytes
        self.budget = budget
        self.latest: OrderedDict[LaneKey, ResponseState] = OrderedDict()
        self.by_id: dict[str, ResponseState] = {}
        self.total = 0

    def get(self, response_id: str) -> ResponseState | None:
        state = self.by_id.get(response_id)
        if state is not None:
            METRICS.cache_hits.inc()
            self.latest.move_to_end(state.lane)
            self.budget.touch(self, state.lane)
        else:
            METRICS.cache_misses.inc()
        return state

    def put(self, lane: LaneKey, state: ResponseState) -> None:
        """Make `state` the lane's latest, replacing the previous one, then keep within bounds."""
        self.evict_lane(lane, reason=None)
        state.lane = lane
        self.latest[lane] = state
        self.by_id[state.id] = state
        self._add_bytes(state.nbytes)
        self.budget.touch(self, lane)
        if self.total > self.max_bytes:
            for other in list(self.latest):
                if self.total <= self.max_bytes:
                    break
                if other != lane:
                    self.evict_lane(other, reason="connection_budget")
        self.budget.enforce((self, lane))

    def evict(self, response_id: str, reason: str) -> None:
        state = self.by_id.get(response_id)
        if state is not None and self.latest.get(state.lane) is state:
            self.evict_lane(state.lane, reason)

    def evict_lane(self, lane: LaneKey, reason: str | None) -> None:
        state = self.latest.pop(lane, None)
        if state is None:
            return
        self.by_id.pop(state.id, None)
        self._add_bytes(-state.nbytes)
        self.budget.forget(self, lane)
        if reason is not None:
            METRICS.cache_evictions.labels(reason=reason).inc()
        session, state.session = state.session, None
        if session is not None:
            session.release()

    def clear(self) -> None:
        for lane in list(self.latest):
            self.evict_lane(lane, reason=None)

    def _add_bytes(self, delta: int) -> None:
        self.total += delta
        self.budget.total += delta
        METRICS.cached_bytes.inc(delta)
