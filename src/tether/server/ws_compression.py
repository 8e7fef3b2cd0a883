"""WebSocket compression that pays for itself: permessage-deflate (RFC 7692) on tether's terms.

Clients offer permessage-deflate (Codex does; the `openai` SDK does when given a `max_size`). The
standard extension then
compresses every message with a compressor of the connection's own, and for an agent turn that is
mostly the same ~25-45 KB of echoed instructions and tools, three times a turn (created, in_progress,
completed), at a cost far above the rest of the turn. Here, instead:

- **Small messages go uncompressed** (the RSV1 bit clear). RFC 7692 lets a sender choose per message;
  a text delta is a couple of hundred bytes that deflate saves a few dozen of, for more CPU than it
  takes to frame it.
- **One compressor per process**, not per connection, reset after every piece it compresses (a full
  flush): a piece never refers to bytes before it, so the client decodes it with any history, nothing
  is kept per connection (zlib keeps 64-256 KiB per compressor), and a compressed piece can be reused
  inside any later message. The server still says nothing about context takeover in the handshake:
  not using it needs no agreement.
- **The request's echo is compressed once**: framing marks where the echo sits in a lifecycle event
  (`encode_event`, handed on by `ws_protocol.send_frame`); its compressed form is kept (keyed by its
  bytes, so the next turn of the same agent finds it too) and spliced between the compressed parts
  before and after it.

The uvicorn protocol that negotiates this (or declines it: `--ws-compression`) and tells the extension
where the echo is lives in `ws_protocol`.
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from websockets import frames
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import PerMessageDeflate, ServerPerMessageDeflateFactory
from websockets.typing import ExtensionParameter

#: a full or sync flush ends with this empty stored block; RFC 7692 drops it from the end of a message
FLUSH_MARKER = b"\x00\x00\xff\xff"
#: a stored block's header at a byte boundary (BFINAL 0, BTYPE 00), then LEN and its complement NLEN
STORED_HEADER = struct.Struct("<BHH")


@dataclass(frozen=True, slots=True)
class DeflateSettings:
    """How tether compresses what it sends on a connection that negotiated permessage-deflate."""

    #: zlib level for the parts of a message that change from event to event
    level: int = 1
    #: zlib level for a request's echo: it is compressed once and reused, so a slower, smaller form pays
    echo_level: int = 6
    #: messages shorter than this (bytes) go uncompressed
    min_size: int = 1024
    #: zlib memLevel of the shared compressors (memory is per process, not per connection)
    mem_level: int = 8
    #: the window the client may compress with (None: the client's choice, up to 32 KiB); this is the
    #: server's inflate memory per connection that sent a compressed message
    client_max_window_bits: int | None = None


DEFAULT_DEFLATE = DeflateSettings()


class PieceCompressor:
    """Raw deflate of independent pieces: each ends with a full flush, so it refers to nothing before it."""

    def __init__(self, level: int, window_bits: int, mem_level: int) -> None:
        self._zlib = zlib.compressobj(level, zlib.DEFLATED, -window_bits, mem_level)

    def piece(self, data: bytes | memoryview) -> bytes:
        return self._zlib.compress(data) + self._zlib.flush(zlib.Z_FULL_FLUSH)


class EchoCache:
    """Compressed echoes by their bytes (and window), least recently used out past `max_bytes`."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.held_bytes = 0
        self._pieces: OrderedDict[tuple[int, bytes], bytes] = OrderedDict()

    def get(self, echo: bytes, window_bits: int, compress: PieceCompressor) -> bytes:
        key = (window_bits, echo)
        piece = self._pieces.get(key)
        if piece is not None:
            self._pieces.move_to_end(key)
            return piece
        piece = compress.piece(echo)
        self._pieces[key] = piece
        self.held_bytes += len(echo) + len(piece)
        while self.held_bytes > self.max_bytes and len(self._pieces) > 1:
            (_, old_echo), old_piece = self._pieces.popitem(last=False)
            self.held_bytes -= len(old_echo) + len(old_piece)
        return piece

    def __len__(self) -> int:
        return len(self._pieces)


def stored(data: bytes | memoryview) -> bytes:
    """`data` as stored (uncompressed) deflate blocks, each up to 64 KiB: a header byte, LEN, NLEN, the
    bytes. Only valid where the stream is at a byte boundary, as it is after a flush."""
    blocks = []
    for start in range(0, len(data), 0xFFFF):
        chunk = data[start:start + 0xFFFF]
        blocks.append(STORED_HEADER.pack(0, len(chunk), len(chunk) ^ 0xFFFF) + bytes(chunk))
    return b"".join(blocks)


class MessageCompressor:
    """Compresses whole messages for every connection with the same settings and window."""

    def __init__(self, settings: DeflateSettings, window_bits: int, echoes: EchoCache) -> None:
        self.settings = settings
        self.window_bits = window_bits
        self.parts = PieceCompressor(settings.level, window_bits, settings.mem_level)
        self.echo_parts = PieceCompressor(settings.echo_level, window_bits, settings.mem_level)
        self.echoes = echoes

    def compress(self, data: bytes, echo_start: int = -1, echo: bytes | None = None) -> bytes:
        """`data` deflated as one message, ready for the wire (without the final flush marker). With
        `echo` found at `echo_start`, its kept compressed form stands in for it, and the parts around
        it that are too small to be worth deflating go as stored blocks."""
        if echo is None or echo_start < 0 or not data.startswith(echo, echo_start):
            return self.parts.piece(data)[:-4]  # a flush ends with the marker
        view = memoryview(data)
        head = self._part(view[:echo_start])
        middle = self.echoes.get(echo, self.window_bits, self.echo_parts)
        tail = view[echo_start + len(echo):]
        if len(tail) >= self.settings.min_size:
            return b"".join((head, middle, self.parts.piece(tail)[:-4]))
        # A message must end with an empty stored block, less the four bytes the receiver adds back
        # (RFC 7692 section 7.2.1): after a stored block, its header byte.
        return b"".join((head, middle, stored(tail), b"\x00"))

    def _part(self, data: memoryview) -> bytes:
        return stored(data) if len(data) < self.settings.min_size else self.parts.piece(data)


class Compressors:
    """The process's message compressors, one per (settings, window), made on first use."""

    def __init__(self) -> None:
        self.echoes = EchoCache()
        self._by_key: dict[tuple[DeflateSettings, int], MessageCompressor] = {}

    def get(self, settings: DeflateSettings, window_bits: int) -> MessageCompressor:
        compressor = self._by_key.get((settings, window_bits))
        if compressor is None:
            compressor = self._by_key[(settings, window_bits)] = MessageCompressor(settings, window_bits, self.echoes)
        return compressor


COMPRESSORS = Compressors()


class SelectiveDeflate(PerMessageDeflate):
    """The negotiated permessage-deflate of one connection: decoding as the standard extension does;
    encoding through the process's shared compressors, and only messages worth it."""

    def __init__(self, negotiated: PerMessageDeflate, settings: DeflateSettings) -> None:
        # The negotiated parameters; no encoder of its own (see the module docstring), and a decoder only
        # once the client sends a compressed message (zlib's inflate state is ~7 KiB a connection).
        self.remote_no_context_takeover = negotiated.remote_no_context_takeover
        self.local_no_context_takeover = negotiated.local_no_context_takeover
        self.remote_max_window_bits = negotiated.remote_max_window_bits
        self.local_max_window_bits = negotiated.local_max_window_bits
        self.compress_settings = {}
        self.decode_cont_data = False
        self.settings = settings
        # zlib cannot deflate within a 256-byte window: a client asking for one gets plain messages.
        bits = negotiated.local_max_window_bits
        self.compressor = COMPRESSORS.get(settings, bits) if bits >= 9 else None
        self._echo: tuple[int, bytes] | None = None

    def decode(self, frame: frames.Frame, *, max_size: int | None = None) -> frames.Frame:
        if frame.rsv1 and not self.remote_no_context_takeover and not hasattr(self, "decoder"):
            self.decoder = zlib.decompressobj(wbits=-self.remote_max_window_bits)
        return super().decode(frame, max_size=max_size)

    def expect_echo(self, echo_start: int, echo: bytes) -> None:
        """The next message holds `echo` at byte `echo_start` (checked before it is relied on)."""
        self._echo = (echo_start, echo)

    def encode(self, frame: frames.Frame) -> frames.Frame:
        echo, self._echo = self._echo, None
        # Control frames, and the frames of a fragmented message (uvicorn sends none), go as they are:
        # a message is compressed whole or not at all.
        if frame.opcode not in (frames.Opcode.TEXT, frames.Opcode.BINARY) or not frame.fin:
            return frame
        data = bytes(frame.data)
        if len(data) < self.settings.min_size or self.compressor is None:
            return frame
        compressed = self.compressor.compress(data, *echo) if echo is not None else self.compressor.compress(data)
        return frames.Frame(frame.opcode, compressed, True, True, frame.rsv2, frame.rsv3)


class SelectiveDeflateFactory(ServerPerMessageDeflateFactory):
    """Negotiates permessage-deflate as the standard server factory does; the extension is ours."""

    def __init__(self, settings: DeflateSettings) -> None:
        super().__init__(client_max_window_bits=settings.client_max_window_bits)
        self.settings = settings

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        response_params, negotiated = super().process_request_params(params, accepted_extensions)
        return response_params, SelectiveDeflate(negotiated, self.settings)
