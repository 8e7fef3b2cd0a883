"""tether's uvicorn WebSocket protocol: uvicorn's sans-I/O websockets implementation, plus

- the compression of `ws_compression` negotiated instead of the standard extension: by default
  (`--ws-compression auto`) for clients elsewhere or behind a proxy, not for a client on this machine
  (there it saves no time and costs CPU at both ends); `deflate` whenever offered; `off` never. The
  echo's place in each lifecycle event is handed to the extension;
- the frames written during one pass of the event loop sent in one write (`CoalescingTransport`);
- a direct way for tether's pump to write an event's frame (`DIRECT_SEND` in the scope's extensions):
  the JSON bytes straight into a text frame, without the ASGI message, the per-call state checks of
  starlette and uvicorn, and the bytes -> str -> bytes round trip of `websocket.send` with `text`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.extensions.base import ServerExtensionFactory
from websockets.http11 import Request
from websockets.protocol import State

from .ws_compression import DEFAULT_DEFLATE, DeflateSettings, SelectiveDeflate, SelectiveDeflateFactory

#: the scope extension holding `TetherWebSocketProtocol.send_frame` (absent under another server)
DIRECT_SEND = "tether.websocket.send_frame"

#: headers a reverse proxy adds: a loopback peer that sends one speaks for a client elsewhere
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


class CoalescingTransport:
    """The socket's transport, except that what is written during one pass of the event loop goes out
    as one write at its end: a turn's events are produced back to back, and one send() system call
    per event (on loopback the sender also pays for the peer's receive) is most of what an event costs."""

    #: written at once past this many bytes held, rather than held to the end of the pass
    MAX_HELD = 256 * 1024

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._held_bytes = 0
        # What is asked on every frame, bound here: through `__getattr__` it cost 5% of a loaded process.
        self.is_closing = transport.is_closing

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(data)
        self._held_bytes += len(data)
        if self._held_bytes > self.MAX_HELD:
            self.flush()

    def writelines(self, pieces: Iterable[bytes]) -> None:
        for piece in pieces:
            self.write(piece)

    def flush(self) -> None:
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held.clear()
        self._held_bytes = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the transport's own
        return getattr(self._transport, name)


class TetherWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websockets protocol, negotiating tether's compression (or none) and writing
    each pass of the event loop's frames at once."""

    extension_factories: Sequence[ServerExtensionFactory] = (SelectiveDeflateFactory(DEFAULT_DEFLATE),)
    #: decline compression for a client on this machine that no proxy forwards (`--ws-compression auto`)
    decline_on_loopback = True
    coalesce_writes = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.available_extensions = list(self.extension_factories)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.coalesce_writes:  # (uvloop's transports are not asyncio.Transport subclasses)
            transport = CoalescingTransport(transport, self.loop)  # type: ignore[arg-type,assignment]
        super().connection_made(transport)

    def handle_connect(self, event: Request) -> None:
        if self.decline_on_loopback and direct_loopback(self.client, event.headers):
            self.conn.available_extensions = []
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][DIRECT_SEND] = self.send_frame

    def send_frame(self, payload: bytes, echo_start: int = -1, echo: bytes | None = None) -> None:
        """Write one text frame of `payload` (UTF-8 JSON) now, once the app has accepted the connection;
        `echo`, at byte `echo_start`, is the request's echo for the compression to reuse. Raises
        `ClientDisconnected` (an OSError, as the ASGI send does) once the connection is closing."""
        if self.close_sent or self.initial_response is not None or self.transport.is_closing():
            raise ClientDisconnected()
        conn = self.conn
        if not conn.extensions and not conn.writes and conn.state is State.OPEN and not conn.expect_continuation_frame:
            # Uncompressed: the frame websockets' send_text would make (a server's frames are unmasked),
            # without its Frame object and its three copies of the payload.
            self.transport.writelines((text_frame_header(len(payload)), payload))
            return
        if echo is not None:
            for extension in self.conn.extensions:
                if isinstance(extension, SelectiveDeflate):
                    extension.expect_echo(echo_start, echo)
        try:
            self.conn.send_text(payload)
        except InvalidState:
            raise ClientDisconnected() from None
        self.transport.write(b"".join(self.conn.data_to_send()))


_TEXT_FIN = 0x81  # FIN and the text opcode
_MEDIUM_HEADER = struct.Struct("!BBH")
_LONG_HEADER = struct.Struct("!BBQ")


def text_frame_header(length: int) -> bytes:
    """The header of a final, unmasked, uncompressed text frame of `length` payload bytes (RFC 6455 5.2)."""
    if length < 126:
        return bytes((_TEXT_FIN, length))
    if length < 65536:
        return _MEDIUM_HEADER.pack(_TEXT_FIN, 126, length)
    return _LONG_HEADER.pack(_TEXT_FIN, 127, length)


def direct_loopback(client: tuple[str, int] | None, headers: Headers) -> bool:
    """A peer on this machine that is not a proxy forwarding someone else: compression cannot save it
    any time (there is no link to save bytes on), only cost it CPU at both ends."""
    if client is None or any(name in headers for name in FORWARDING_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def websocket_protocol(
    settings: DeflateSettings | None, *, decline_on_loopback: bool = False
) -> type[asyncio.Protocol]:
    """The uvicorn `ws` protocol class that compresses with `settings` (None: declines compression)."""
    factories = (SelectiveDeflateFactory(settings),) if settings is not None else ()
    return type("TetherWebSocketProtocol", (TetherWebSocketProtocol,),
                {"extension_factories": factories, "decline_on_loopback": decline_on_loopback})


#: `--ws-compression` modes: `auto` compresses for clients elsewhere (or behind a proxy) and not for a
#: client on this machine; `deflate` whenever a client offers it; `off` never
COMPRESSION_MODES = ("auto", "deflate", "off")


def protocol_for(mode: str) -> type[asyncio.Protocol]:
    """The protocol class for a `--ws-compression` mode."""
    if mode == "auto":
        return TetherWebSocketProtocol
    if mode == "deflate":
        return websocket_protocol(DEFAULT_DEFLATE)
    if mode == "off":
        return websocket_protocol(None)
    raise ValueError(f"unknown WebSocket compression {mode!r} (known: {', '.join(COMPRESSION_MODES)})")
