"""`RecentResponses`: the `store: true` responses this process committed last, with their whole context,
so that continuing one over HTTP (or from a new WebSocket) does not read its chain back from the store.

The store stays the truth. An entry is served only while the store's count of deletions
(`ResponseStore.deletions`, one small read, any process's deletions included) is what it was when the
entry's chain was last known whole; otherwise every older entry is dropped and the chain is read from the
store, so a response deleted anywhere is never continued from memory. Only chains stored from their first
response are kept: one with an unstored ancestor is not continuable from the store, nor from here.

One entry per conversation: a child replaces its parent (a retry from the parent reads the store), and the
least recently used entries go once their contexts' bytes pass the budget.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

from .metrics import METRICS, labelled
from .state import ResponseState


class RecentResponses:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.total = 0
        self._entries: OrderedDict[str, ResponseState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def holds(self, response_id: str, owner: str) -> bool:
        """Whether a continuation of this response may be served from memory, once the store's count of
        deletions is checked (`recall`)."""
        state = self._entries.get(response_id)
        return state is not None and state.owner == owner

    def recall(self, response_id: str, owner: str, deletions: int) -> ResponseState | None:
        """A fresh copy of the remembered state, if nothing was deleted since its chain was read whole."""
        state = self._entries.get(response_id)
        if state is None or state.owner != owner:
            return None
        if state.deletions != deletions:
            self._forget_older_than(deletions)
            labelled(METRICS.recent_responses, "stale").inc()
            return None
        self._entries.move_to_end(response_id)
        labelled(METRICS.recent_responses, "hit").inc()
        return dataclasses.replace(state, session=None, lane=None)

    def remember(self, state: ResponseState, parent: ResponseState | None, deletions: int) -> None:
        """A response just committed, continuing `parent`, its commit having seen `deletions`. Its chain
        is whole (and `state.deletions` says so) only if the parent's was: then as of the smaller count,
        since a deletion after the parent's chain was read may have taken an ancestor."""
        if parent is None:
            state.deletions = deletions
        elif parent.deletions is not None:
            state.deletions = min(parent.deletions, deletions)
        else:
            return  # an ancestor is not stored: the store cannot continue this chain, so neither may memory
        if self.max_bytes <= 0 or state.nbytes > self.max_bytes:
            return
        if parent is not None:
            self._drop(parent.id)
        self._drop(state.id)
        self._entries[state.id] = dataclasses.replace(state, session=None, lane=None)
        self.total += state.nbytes
        while self.total > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))
        METRICS.recent_response_bytes.set(self.total)

    def forget(self, response_id: str) -> None:
        """This process deleted it: drop it at once (other processes notice the count of deletions)."""
        self._drop(response_id)
        METRICS.recent_response_bytes.set(self.total)

    def _forget_older_than(self, deletions: int) -> None:
        for response_id in [key for key, state in self._entries.items() if state.deletions != deletions]:
            self._drop(response_id)
        METRICS.recent_response_bytes.set(self.total)

    def _drop(self, response_id: str) -> None:
        state = self._entries.pop(response_id, None)
        if state is not None:
            self.total -= state.nbytes
