"""How one event becomes bytes: SSE lines for HTTP streaming, a text frame for WebSocket mode."""

from __future__ import annotations

from typing import Any

import orjson


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def dumps_text(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def sse_frame(event: dict[str, Any]) -> bytes:
    """`event: <type>\\ndata: <json>\\n\\n`; no `[DONE]` sentinel for Responses."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
