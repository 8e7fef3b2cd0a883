"""Helpers for the upstream-backend tests: events of one turn, validated, and `/metrics` samples."""

from __future__ import annotations

from typing import Any

import httpx
from openai import OpenAI

from tether.api.events import TERMINAL_EVENT_TYPES as TERMINAL

from .support import RunningServer, check_output_indices, check_sequence_numbers, validate_sse_event, validate_ws_event


def sse_events(client: OpenAI, **kwargs: Any) -> list[dict[str, Any]]:
    """A streamed response's events, each validated against the SDK's models, in checked order."""
    events = [event.to_dict() for event in client.responses.create(stream=True, **kwargs)]
    for event in events:
        validate_sse_event(event)
    check_sequence_numbers(events)
    check_output_indices(events)
    return events


def ws_turn(conn: Any, **kwargs: Any) -> list[Any]:
    conn.response.create(**kwargs)
    events = []
    for event in conn:
        events.append(event)
        if event.type in TERMINAL:
            break
    for event in events:
        validate_ws_event(event.to_dict())
    return events


def metric(server: RunningServer, sample: str) -> float:
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
