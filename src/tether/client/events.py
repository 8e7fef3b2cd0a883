"""Server events as the openai package's types: WebSocket frames and SSE events parsed into its models.

Parsing is strict first (pydantic validation against the SDK unions) and lenient after: an event the SDK
does not know (a vendor extension such as `codex.rate_limits`) becomes a `RawEvent` instead of an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openai.types.responses import ResponseStreamEvent
from openai.types.responses.responses_server_event import ResponsesServerEvent
from pydantic import TypeAdapter, ValidationError

from ..api.events import TERMINAL_EVENT_TYPES

WS_EVENTS: TypeAdapter[Any] = TypeAdapter(ResponsesServerEvent)
SSE_EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)

#: the events that carry model output: the first of them marks the start of "model time"
DELTA_SUFFIXES = (".delta",)


@dataclass(frozen=True, slots=True)
class RawEvent:
    """An event the openai package has no (matching) type for; `data` is the decoded JSON object."""

    type: str
    data: dict[str, Any]


def parse_event(data: dict[str, Any], *, websocket: bool) -> Any:
    adapter = WS_EVENTS if websocket else SSE_EVENTS
    try:
        return adapter.validate_python(data)
    except ValidationError:
        return RawEvent(str(data.get("type", "")), data)


def is_terminal(kind: str) -> bool:
    return kind in TERMINAL_EVENT_TYPES


def is_delta(kind: str) -> bool:
    return kind.endswith(DELTA_SUFFIXES)
