"""The client's exceptions: one small hierarchy, so callers can catch as broadly or narrowly as they need."""

from __future__ import annotations

from typing import Any


class TetherError(Exception):
    """Base of every error the tether client raises."""


class TransportError(TetherError):
    """The connection could not be opened, or it broke before the response finished."""


class UpgradeRefused(TransportError):
    """The server refused the WebSocket upgrade (426 or another HTTP status)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConnectionLost(TransportError):
    """The WebSocket closed (or the SSE stream ended) before a terminal event."""


class TurnTimeout(TetherError, TimeoutError):
    """No event arrived within the event timeout, or the connection did not open in time."""


class ServerError(TetherError):
    """The server answered with an error: an HTTP error body, an SSE `error` event or a WebSocket `error` event."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param
        self.type = type
        self.body = body

    def __str__(self) -> str:
        parts = [p for p in (str(self.status) if self.status else None, self.code) if p]
        prefix = f"[{' '.join(parts)}] " if parts else ""
        return f"{prefix}{self.message}"


#: error codes after which a fresh connection with the full context is the documented recovery
RECOVERABLE_CODES = frozenset({"previous_response_not_found", "websocket_connection_limit_reached"})


class ResponseFailed(TetherError):
    """The response ended with `response.failed` or `response.incomplete`; `.response` holds it."""

    def __init__(self, message: str, response: Any) -> None:
        super().__init__(message)
        self.response = response
