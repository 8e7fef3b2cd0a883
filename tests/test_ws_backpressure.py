"""A client that floods creates without reading: the server stops reading it (backpressure), so its
memory stays bounded, and it still serves other connections."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from .support import RunningServer, ScriptedServer
from .ws_support import collect, create_event

FLOOD_CREATES = 200
CREATE_BYTES = 1_200_000
#: before the bound, 200 such creates grew the server by ~231 MiB
MAX_GROWTH_MIB = 100


SERVER = ScriptedServer([{"text": "a slow answer " * 40}], tokens_per_second=50)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_flooding_creates_without_reading_keeps_the_server_memory_bounded(server: RunningServer) -> None:
    before = rss_mib(server.process.pid)
    frame = json.dumps(create_event(input="x" * CREATE_BYTES, store=False))
    ws = connect(server.ws_url, max_size=None, compression=None, close_timeout=1)
    sent = 0
    done = threading.Event()

    def flood() -> None:
        nonlocal sent
        try:
            for _ in range(FLOOD_CREATES):
                ws.send(frame)
                sent += 1
        except (ConnectionClosed, OSError):
            pass
        finally:
            done.set()

    threading.Thread(target=flood, daemon=True).start()
    done.wait(8)  # the flood stalls once the server stops reading; give it time to fill every buffer
    peak = rss_mib(server.process.pid)
    assert sent < FLOOD_CREATES, "the server kept reading a client that never reads its answers"
    assert peak - before < MAX_GROWTH_MIB, f"server grew {peak - before:.0f} MiB under the flood"
    print(f"flood: {sent} of {FLOOD_CREATES} creates sent; server RSS {before:.0f} -> {peak:.0f} MiB")
    # Another client is served meanwhile.
    with connect(server.ws_url) as other:
        other.send(json.dumps(create_event(input="hi", store=False, max_output_tokens=16)))
        assert collect(other)[-1]["type"] == "response.incomplete"
    ws.socket.shutdown(socket.SHUT_RDWR)  # the flooding thread is stuck in a send: cut the connection under it
    ws.close()
