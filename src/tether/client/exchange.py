"""One request and the events it produced: shared by both transports.

An exchange is fed the decoded JSON events in order; it parses them into the openai package's types,
calls the `on_event` callback, keeps the timings, and turns a terminal `error` event into `ServerError`.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from openai.types.responses import Response

from .errors import ServerError
from .events import is_delta, is_terminal, parse_event

OnEvent = Callable[[Any], Awaitable[None] | None]


@dataclass(slots=True)
class Exchange:
    websocket: bool
    bytes_sent: int
    sent_at: float = field(default_factory=time.perf_counter)
    events: list[Any] = field(default_factory=list)
    first_event_at: float | None = None
    first_delta_at: float | None = None
    terminal_at: float | None = None
    #: the terminal event's `response` object, as JSON (its `output` is reused verbatim as history)
    response_json: dict[str, Any] | None = None
    response: Response | None = None

    async def feed(self, data: dict[str, Any], on_event: OnEvent | None) -> bool:
        """Takes one event; returns True once it was the terminal one. Raises `ServerError` on `error`."""
        now = time.perf_counter()
        if self.first_event_at is None:
            self.first_event_at = now
        kind = str(data.get("type", ""))
        if self.first_delta_at is None and is_delta(kind):
            self.first_delta_at = now
        event = parse_event(data, websocket=self.websocket)
        self.events.append(event)
        if on_event is not None:
            outcome = on_event(event)
            if inspect.isawaitable(outcome):
                await outcome
        if not is_terminal(kind):
            return False
        self.terminal_at = time.perf_counter()
        if kind == "error":
            raise error_from_event(data)
        raw = data.get("response")
        if isinstance(raw, dict):
            self.response_json = raw
            self.response = Response.model_validate(raw)
        return True

    @property
    def wait_s(self) -> float:
        return (self.terminal_at or time.perf_counter()) - self.sent_at

    @property
    def model_s(self) -> float:
        if self.first_delta_at is None or self.terminal_at is None:
            return 0.0
        return self.terminal_at - self.first_delta_at


def error_from_event(data: dict[str, Any]) -> ServerError:
    """Either error shape: the WebSocket one (nested `error`, with `status`) or the flat SSE one."""
    nested = data.get("error")
    body = nested if isinstance(nested, dict) else data
    status = data.get("status")
    return ServerError(
        str(body.get("message") or "the server reported an error"),
        status=status if isinstance(status, int) else None,
        code=body.get("code"),
        param=body.get("param"),
        type=body.get("type") if isinstance(nested, dict) else None,
        body=data,
    )


def error_from_body(status: int, body: Any, text: str) -> ServerError:
    """An HTTP error answer: the API's `{"error": {...}}` body, or whatever text came back."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return ServerError(
            str(error.get("message") or f"HTTP {status}"),
            status=status,
            code=error.get("code"),
            param=error.get("param"),
            type=error.get("type"),
            body=body,
        )
    return ServerError(f"HTTP {status}: {text[:500]}", status=status, body=text)
