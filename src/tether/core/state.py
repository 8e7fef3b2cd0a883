"""`ResponseState`: a finished response with everything a continuation needs, kept hot in memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..api.items import Item
from ..backends.base import BackendSession
from .context import Context


@dataclass(slots=True)
class ResponseState:
    """The response object, its context (its input and output appended to its parent's) and the
    backend session that has rendered exactly that context, if one is still attached."""

    response: dict[str, Any]
    input_items: list[Item]
    context: Context
    owner: str
    session: BackendSession | None = None
    lane: str | None = None
    #: approximate memory of the whole context (JSON bytes), for the connection caches' bounds
    nbytes: int = 0
    #: where the engine holds this conversation (`BackendSession.placement`: an upstream replica), so a
    #: continuation without a live session goes back there (`Backend.session_for`)
    placement: str | None = None
    #: a parent rebuilt from the store: its whole stored Response as JSON, decoded only if a
    #: prompt-cache diagnosis needs its settings (`response` then holds just id and output)
    stored_response: bytes | None = None
    #: the store's count of deletions (`ResponseStore.deletions`) when this state's whole chain was last
    #: known to be stored; None when some of it is not stored (it then cannot be continued from the store)
    deletions: int | None = None

    @property
    def id(self) -> str:
        return str(self.response["id"])

    def take_session(self) -> BackendSession | None:
        """Hand the session to a continuation; this state then no longer holds one."""
        session, self.session = self.session, None
        if session is not None and session.broken:
            return None
        return session
