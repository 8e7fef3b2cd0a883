"""WebSocket mode: one socket, `response.create` frames out, server events in (text frames of JSON)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .errors import ConnectionLost, TransportError, TurnTimeout, UpgradeRefused
from .exchange import Exchange, OnEvent


class WebSocketTransport:
    def __init__(self, url: str, headers: dict[str, str], connect_timeout: float, event_timeout: float) -> None:
        self.url = url
        self.headers = headers
        self.connect_timeout = connect_timeout
        self.event_timeout = event_timeout
        #: JSON bytes of the last request sent (0 when it could not be sent)
        self.last_bytes_sent = 0
        self.ws: ClientConnection | None = None

    @property
    def is_open(self) -> bool:
        return self.ws is not None

    async def open(self) -> None:
        try:
            self.ws = await connect(
                self.url,
                additional_headers=self.headers,
                open_timeout=self.connect_timeout,
                max_size=None,  # a `response.completed` echoing a long history may exceed 1 MiB
                compression="deflate",
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise UpgradeRefused(f"the server refused the WebSocket upgrade with HTTP {status}", status) from exc
        except TimeoutError as exc:
            raise TurnTimeout(f"the WebSocket connection did not open within {self.connect_timeout:g} s") from exc
        except (InvalidHandshake, OSError) as exc:
            raise UpgradeRefused(f"the WebSocket connection failed: {exc}") from exc

    async def request(self, body: dict[str, Any], on_event: OnEvent | None) -> Exchange:
        """Sends one `response.create` and reads events up to the terminal one."""
        if self.ws is None:
            raise TransportError("the WebSocket is not open")
        frame = orjson.dumps({"type": "response.create", **body}).decode()
        exchange = Exchange(websocket=True, bytes_sent=len(frame.encode()))
        self.last_bytes_sent = 0
        try:
            await self.ws.send(frame)
            self.last_bytes_sent = exchange.bytes_sent
            while True:
                message = await asyncio.wait_for(self.ws.recv(), self.event_timeout)
                data = orjson.loads(message)
                if isinstance(data, dict) and await exchange.feed(data, on_event):
                    return exchange
        except ConnectionClosed as exc:
            await self.close()
            raise ConnectionLost(f"the WebSocket closed before the response finished ({exc})") from exc
        except TimeoutError as exc:
            await self.close()
            raise TurnTimeout(f"no event from the server for {self.event_timeout:g} s") from exc
        except orjson.JSONDecodeError as exc:
            await self.close()
            raise TransportError(f"the server sent a frame that is not JSON: {exc}") from exc

    async def close(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            await ws.close()
