"""tether's WebSocket protocol writes what one pass of the event loop produced as one write: in order,
nothing lost, and everything held goes out before the transport closes."""

from __future__ import annotations

import asyncio
from typing import Any

from tether.server.ws_protocol import CoalescingTransport


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000)}.get(name, default)


async def test_one_pass_of_writes_is_one_write_in_order() -> None:
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    for frame in (b"created", b"in_progress", b"delta"):
        transport.write(frame)
    assert real.writes == []  # held until the pass ends
    await asyncio.sleep(0)
    assert real.writes == [b"createdin_progressdelta"]
    transport.write(b"completed")
    await asyncio.sleep(0)
    assert real.writes == [b"createdin_progressdelta", b"completed"]
    assert transport.get_extra_info("peername") == ("127.0.0.1", 5000)  # the rest is the transport's


async def test_close_writes_what_is_held_first_and_a_large_burst_goes_at_once() -> None:
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"close frame")
    transport.close()
    assert real.writes == [b"close frame"] and real.closed
    await asyncio.sleep(0)  # the pending flush finds nothing left to write
    assert real.writes == [b"close frame"]

    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    big = b"x" * (CoalescingTransport.MAX_HELD + 1)
    transport.write(big)
    assert real.writes == [big]
