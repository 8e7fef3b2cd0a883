"""Raw Responses clients that count what they put on the wire: WebSocket (`websockets`) and HTTP SSE (`httpx`).

Each sends one create body and returns when the terminal event arrives. Bytes are the client's own
wire bytes: for WebSocket every frame as written to the socket (headers, masking, deflate included);
for HTTP the request line, headers and body exactly as HTTP/1.1 writes them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from ..api.events import TERMINAL_EVENT_TYPES
from ..api.sse import SSEDecoder

#: events that carry the model's first generated token
FIRST_TOKEN_EVENTS = frozenset({
    "response.output_text.delta", "response.function_call_arguments.delta", "response.custom_tool_call_input.delta",
    "response.reasoning_text.delta", "response.refusal.delta",
})


class BenchError(RuntimeError):
    """The server answered a turn with an error or an unexpected terminal event."""


@dataclass(slots=True)
class TimedTurn:
    response: dict[str, Any]  # the final Response object
    wait_s: float  # from the first byte sent to the terminal event received
    bytes_sent: int
    bytes_received: int
    payload_bytes: int  # the request's JSON before framing or compression
    #: from the first byte sent to the first output delta (text or tool-call arguments): the TTFT
    first_delta_s: float | None = None


class Transport(Protocol):
    """One client connection; runners for other servers (peers) plug in here."""

    async def create(self, body: dict[str, Any]) -> TimedTurn: ...

    async def close(self) -> None: ...


def _final(event: dict[str, Any]) -> dict[str, Any]:
    # `incomplete` is a whole answer too: a real model stopped by max_output_tokens.
    if event["type"] not in ("response.completed", "response.incomplete"):
        raise BenchError(f"turn ended with {event['type']}: {orjson.dumps(event)[:500]!r}")
    response: dict[str, Any] = event["response"]
    return response


class WebSocketTransport:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.sent = 0
        self.received = 0
        transport = connection.transport
        write, data_received = transport.write, connection.data_received

        def counting_write(data: bytes | bytearray | memoryview) -> None:
            self.sent += len(data)
            write(data)

        def counting_received(data: bytes) -> None:
            self.received += len(data)
            data_received(data)

        transport.write = counting_write  # type: ignore[method-assign]
        connection.data_received = counting_received  # type: ignore[method-assign]

    @classmethod
    async def open(
        cls, ws_url: str, *, deflate: bool = True, headers: dict[str, str] | None = None
    ) -> WebSocketTransport:
        """Connect offering permessage-deflate, as Codex (and the SDK given a max_size) do, unless `deflate`
        is false."""
        connection = await connect(ws_url, max_size=None, compression="deflate" if deflate else None, open_timeout=30,
                                   additional_headers=headers)
        return cls(connection)

    async def create(self, body: dict[str, Any]) -> TimedTurn:
        sent, received = self.sent, self.received
        start = time.perf_counter()
        payload = orjson.dumps({"type": "response.create", **body})
        await self.connection.send(payload.decode())
        first: float | None = None
        while True:
            event = orjson.loads(await self.connection.recv())
            if first is None and event.get("type") in FIRST_TOKEN_EVENTS:
                first = time.perf_counter() - start
            if event.get("type") in TERMINAL_EVENT_TYPES:
                break
        wait = time.perf_counter() - start
        return TimedTurn(_final(event), wait, self.sent - sent, self.received - received, len(payload), first)

    async def close(self) -> None:
        await self.connection.close()


class HttpSseTransport:
    def __init__(self, base_url: str) -> None:
        self.client = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(300.0))

    async def create(self, body: dict[str, Any]) -> TimedTurn:
        content = orjson.dumps({**body, "stream": True})
        request = self.client.build_request(
            "POST", "/v1/responses", content=content, headers={"Content-Type": "application/json"}
        )
        head = f"POST {request.url.raw_path.decode()} HTTP/1.1\r\n".encode()
        head += b"".join(k + b": " + v + b"\r\n" for k, v in request.headers.raw) + b"\r\n"
        start = time.perf_counter()
        received = 0
        wait = 0.0
        first: float | None = None
        final: dict[str, Any] | None = None
        # Read to the end (the server closes the stream after the terminal event) so the kept-alive
        # connection goes back to the pool; the wait stops at the terminal event.
        async with self.client.stream("POST", request.url, content=content, headers=request.headers) as response:
            received += sum(len(k) + len(v) + 4 for k, v in response.headers.raw)
            if response.status_code != 200:
                raise BenchError(f"HTTP {response.status_code}: {(await response.aread())[:500]!r}")
            decoder = SSEDecoder()
            async for chunk in response.aiter_raw():
                received += len(chunk)
                for sse in decoder.feed(chunk):
                    if sse.data == "[DONE]":  # peers (LiteLLM) end the stream with a chat-completions sentinel
                        continue
                    event = orjson.loads(sse.data)
                    if first is None and event.get("type") in FIRST_TOKEN_EVENTS:
                        first = time.perf_counter() - start
                    if final is None and event.get("type") in TERMINAL_EVENT_TYPES:
                        wait = time.perf_counter() - start
                        final = event
        if final is None:
            raise BenchError("the SSE stream ended without a terminal event")
        event = final
        return TimedTurn(_final(event), wait, len(head) + len(content), received, len(content), first)

    async def close(self) -> None:
        await self.client.aclose()
