"""Server-sent events, decoded incrementally and without I/O: bytes (or lines) in, events out.

The one SSE decoder of the project: the upstream backend reads chat-completions streams with it, the
client and the benchmarks read Responses streams with it, and the tests read both. It follows the
WHATWG event-stream rules: lines end in LF, CRLF or CR (a CRLF split across two chunks is one line
end); a line starting with `:` is a comment; `field: value` loses one leading space; `data` lines join
with LF; a blank line dispatches the event (an event without data is dropped); `id` persists across
events; a leading byte-order mark is skipped. One deliberate leniency: `close()` hands on an event the
stream ended without a blank line after it, since servers that end the body right after their last
`data:` line are common and the event is complete in practice.

Sentinels such as chat completions' `data: [DONE]` are the caller's business, not this module's.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

BOM = b"\xef\xbb\xbf"
DEFAULT_EVENT = "message"


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event: its data (lines joined with LF), its type and the last event id seen."""

    data: str
    event: str = DEFAULT_EVENT
    id: str = ""


def _normalize(buffer: bytes) -> bytes:
    return buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


class SSEDecoder:
    """Feed it the body as it arrives (`feed`) or line by line (`feed_line`); call `close` at its end."""

    __slots__ = ("_after_cr", "_buffer", "_data", "_event", "_last_id", "_started", "retry")

    def __init__(self) -> None:
        self._buffer = b""  # an incomplete line
        self._after_cr = False  # the last chunk ended in CR: an LF that starts the next one is its pair
        self._started = False  # past the (optional) byte-order mark
        self._data: list[str] = []
        self._event = ""
        self._last_id = ""
        #: the reconnection time the stream asked for (`retry:`), in milliseconds
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """The events that `chunk` completes, in order."""
        if not chunk:
            return []
        if self._after_cr:
            self._after_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buffer = self._buffer + chunk if self._buffer else chunk
        if not self._started:
            if len(buffer) < len(BOM) and BOM.startswith(buffer):
                self._buffer = buffer  # maybe a mark split across chunks: wait for more
                return []
            self._started = True
            if buffer.startswith(BOM):
                buffer = buffer[len(BOM) :]
        if buffer[-1:] == b"\r":
            self._after_cr = True
            buffer = _normalize(buffer[:-1]) + b"\n"
        elif b"\r" in buffer:
            buffer = _normalize(buffer)
        *lines, self._buffer = buffer.split(b"\n")
        events: list[ServerSentEvent] = []
        for line in lines:
            event = self.feed_line(line.decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
        return events

    def feed_line(self, line: str) -> ServerSentEvent | None:
        """One line, without its line end (as `httpx`'s `iter_lines` gives them)."""
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None  # a comment: keep-alive pings and the like
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry = int(value)
        return None  # any other field is ignored, as the standard says

    def close(self) -> list[ServerSentEvent]:
        """The end of the stream: the event still pending, if its last line had no blank line after it."""
        events: list[ServerSentEvent] = []
        if self._buffer:
            line, self._buffer = self._buffer, b""
            event = self.feed_line(line.decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
        self._after_cr = False
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent("\n".join(data), event or DEFAULT_EVENT, self._last_id)


async def decode_stream(chunks: AsyncIterable[bytes]) -> AsyncIterator[ServerSentEvent]:
    """The events of a body read chunk by chunk (e.g. `httpx.Response.aiter_bytes()`), then `close`."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.close():
        yield event
