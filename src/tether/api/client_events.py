"""WebSocket mode's client events: one text frame in, one typed event out, validated once.

`decode_client_event` is the only place a WebSocket frame is parsed. A `response.create` is validated
into a `CreateRequest` here (its `stream_id` with it); a create that fails validation still becomes a
`CreateEvent` carrying the error, because its failure is reported in its lane's order and evicts a
same-lane parent like any failed continuation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .errors import APIError, invalid
from .nesting import refuse_deep_nesting
from .request import CreateRequest, parse_create, validate_stream_id

LaneKey = str | None
SUPPORTED = ("response.create", "response.steer", "response.interrupt", "response.processed")


@dataclass(frozen=True, slots=True)
class CreateEvent:
    """`response.create`: the validated request, or the error that refused it (then `request` is None)."""

    lane: LaneKey
    previous_response_id: str | None
    request: CreateRequest | None
    error: APIError | None
    #: the frame's size, for the connection's bound on what it holds queued
    nbytes: int
    received_at: float


@dataclass(frozen=True, slots=True)
class SteerEvent:
    """`response.steer`: queue user input for the active response that continues `previous_response_id`."""

    previous_response_id: Any
    input: Any


@dataclass(frozen=True, slots=True)
class InterruptEvent:
    """`response.interrupt`: stop a streaming response now (Codex's instant interrupt)."""

    response_id: Any
    mode: Any


@dataclass(frozen=True, slots=True)
class ProcessedEvent:
    """`response.processed`: the client has handled a response; no reply."""

    response_id: Any


@dataclass(frozen=True, slots=True)
class InvalidEvent:
    """A frame that is no client event at all: a connection-level `error`, the socket stays open."""

    error: APIError


ClientEvent = CreateEvent | SteerEvent | InterruptEvent | ProcessedEvent | InvalidEvent


def decode_client_event(text: str | bytes, received_at: float) -> ClientEvent:
    """Parse one frame. Never raises for anything a client can send."""
    try:
        event = orjson.loads(text)
    except orjson.JSONDecodeError:
        return InvalidEvent(invalid("The frame is not valid JSON.", code="invalid_json"))
    if not isinstance(event, dict):
        return InvalidEvent(invalid("Each frame must be a JSON object with a 'type'.", code="invalid_event"))
    kind = event.get("type")
    if kind == "response.create":
        return _create(event, text, received_at)  # `parse_create` applies the nesting limit
    try:
        refuse_deep_nesting(event, text)  # a steer's input is echoed back on failure: it must be writable
    except APIError as exc:
        return InvalidEvent(exc)
    if kind == "response.steer":
        return SteerEvent(event.get("previous_response_id"), event.get("input"))
    if kind == "response.interrupt":
        return InterruptEvent(event.get("response_id"), event.get("mode"))
    if kind == "response.processed":
        return ProcessedEvent(event.get("response_id"))
    shown = repr(kind) if isinstance(kind, str) and len(kind) <= 64 else "of this kind"
    return InvalidEvent(
        invalid(
            f"Unknown event type {shown}. Supported: {', '.join(repr(name) for name in SUPPORTED)}.",
            "type",
            code="invalid_event",
        )
    )


def binary_frame_error() -> APIError:
    return invalid("Binary frames are not supported: send each event as a JSON text frame.", code="invalid_event")


def _create(body: dict[str, Any], text: str | bytes, received_at: float) -> CreateEvent | InvalidEvent:
    previous = body.get("previous_response_id")
    previous_id = previous if isinstance(previous, str) and previous else None
    raw_lane = body.get("stream_id")
    try:
        lane = validate_stream_id(raw_lane) if raw_lane is not None else None
    except APIError as exc:
        return InvalidEvent(exc)  # an invalid lane names no lane: the error is connection-level
    try:
        request = parse_create(body, websocket=True, stream_id=lane, text=text)
    except APIError as exc:
        return CreateEvent(lane, previous_id, None, exc, len(text), received_at)
    return CreateEvent(lane, request.previous_response_id, request, None, len(text), received_at)
