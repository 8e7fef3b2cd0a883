"""How one event becomes bytes: SSE lines for HTTP streaming, a text frame for WebSocket mode.

A lifecycle event (`response.created`, `.in_progress`, `.completed`...) carries the whole Response, and
most of that is the request's echo (see api/response.py), which is the same in every event of a turn.
It is serialized once per request and written into each event as one run of bytes; `encode_event` says
where that run is, so the WebSocket transport can reuse its compressed form too (`ws_protocol.send_frame`).
"""

from __future__ import annotations

from typing import Any

import orjson

from .response import ResponseObject


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def encode_event(event: dict[str, Any]) -> tuple[bytes, int, bytes | None]:
    """The event's JSON, and where the request's echo is in it: (payload, offset, echo) or (payload, -1, None)."""
    response = event.get("response")
    if not isinstance(response, ResponseObject) or next(iter(event), None) != "type":
        return orjson.dumps(event), -1, None
    echo = response.echo
    if echo is None or not echo.holds(response):  # its request is gone, or a field was replaced since
        return orjson.dumps(event), -1, None
    own = orjson.dumps({key: value for key, value in response.items() if key not in echo.fields})
    rest = {key: value for key, value in event.items() if key != "type" and key != "response"}
    head = b'{"type":' + orjson.dumps(event["type"]) + b',"response":' + own[:-1] + (b"," if len(own) > 2 else b"")
    tail = b"}," + orjson.dumps(rest)[1:] if rest else b"}}"
    return head + echo.json + tail, len(head), echo.json


def sse_frame(event: dict[str, Any]) -> bytes:
    """`event: <type>\\ndata: <json>\\n\\n`; no `[DONE]` sentinel for Responses."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + encode_event(event)[0] + b"\n\n"
