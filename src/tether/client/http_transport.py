"""HTTP: `POST /responses` with `stream: true`, the events read from the SSE stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from ..api.sse import decode_stream
from .errors import ConnectionLost, TransportError, TurnTimeout
from .exchange import Exchange, OnEvent, error_from_body


class HttpTransport:
    def __init__(self, http: httpx.AsyncClient, url: str, headers: dict[str, str], event_timeout: float) -> None:
        self.http = http
        self.url = url
        self.headers = {**headers, "Accept": "text/event-stream", "Content-Type": "application/json"}
        self.event_timeout = event_timeout
        #: JSON bytes of the last request sent (0 when it could not be sent)
        self.last_bytes_sent = 0

    async def request(self, body: dict[str, Any], on_event: OnEvent | None) -> Exchange:
        payload = orjson.dumps({**body, "stream": True})
        exchange = Exchange(websocket=False, bytes_sent=len(payload))
        self.last_bytes_sent = len(payload)
        timeout = httpx.Timeout(self.event_timeout, connect=min(self.event_timeout, 30.0))
        try:
            async with self.http.stream("POST", self.url, content=payload, headers=self.headers,
                                        timeout=timeout) as answer:
                if answer.status_code >= 400:
                    text = (await answer.aread()).decode(errors="replace")
                    try:
                        parsed: Any = orjson.loads(text)
                    except orjson.JSONDecodeError:
                        parsed = None
                    raise error_from_body(answer.status_code, parsed, text)
                async for data in _sse_events(answer.aiter_bytes()):
                    if await exchange.feed(data, on_event):
                        return exchange
        except httpx.TimeoutException as exc:
            raise TurnTimeout(f"no data from the server for {self.event_timeout:g} s") from exc
        except httpx.TransportError as exc:
            raise TransportError(f"HTTP request failed: {exc}") from exc
        raise ConnectionLost("the event stream ended before a terminal event")


async def _sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    """The JSON object of each SSE event (a `[DONE]` sentinel, which Responses streams lack, ends it)."""
    async for event in decode_stream(chunks):
        if event.data.strip() == "[DONE]":
            return
        decoded = orjson.loads(event.data)
        if isinstance(decoded, dict):
            yield decoded
