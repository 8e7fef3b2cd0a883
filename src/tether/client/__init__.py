"""A Python client for any Responses API server: WebSocket mode first, HTTP+SSE fallback, incremental chaining."""

from .client import AsyncTetherClient, SyncConversation, TetherClient
from .conversation import Conversation
from .errors import (
    ConnectionLost,
    ResponseFailed,
    ServerError,
    TetherError,
    TransportError,
    TurnTimeout,
    UpgradeRefused,
)
from .events import RawEvent
from .stats import TurnReply, TurnStats

__all__ = [
    "AsyncTetherClient",
    "ConnectionLost",
    "Conversation",
    "RawEvent",
    "ResponseFailed",
    "ServerError",
    "SyncConversation",
    "TetherClient",
    "TetherError",
    "TransportError",
    "TurnReply",
    "TurnStats",
    "TurnTimeout",
    "UpgradeRefused",
]
