"""A TCP delay proxy that models a WAN link: per direction a one-way delay (half the RTT) and a bandwidth
limit (bytes are serialized onto the link one after another, then delivered after the delay).

    python -m tether.bench.proxy --target 127.0.0.1:8000 --rtt-ms 40 --mbit 20   # prints the port it listens on
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator

CHUNK = 16 * 1024


class Link:
    """One direction: a FIFO link with a serialization rate and a propagation delay."""

    def __init__(self, delay_s: float, bytes_per_s: float | None) -> None:
        self.delay_s = delay_s
        self.bytes_per_s = bytes_per_s
        self.free_at = 0.0

    def departure(self, now: float, size: int) -> float:
        if self.bytes_per_s is None:
            return now + self.delay_s
        self.free_at = max(now, self.free_at) + size / self.bytes_per_s
        return self.free_at + self.delay_s


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            at, data = await queue.get()
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    task = loop.create_task(deliver())
    try:
        while data := await reader.read(CHUNK):
            queue.put_nowait((link.departure(loop.time(), len(data)), data))
    except OSError:
        pass
    queue.put_nowait((link.departure(loop.time(), 0), b""))
    with contextlib.suppress(OSError):
        await task


async def serve(port: int, target: tuple[str, int], rtt_ms: float, mbit: float | None) -> None:
    rate = mbit * 1e6 / 8 if mbit else None

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        up, down = Link(rtt_ms / 2000, rate), Link(rtt_ms / 2000, rate)
        await asyncio.gather(_pump(client_reader, server_writer, up), _pump(server_reader, client_writer, down))
        for writer in (client_writer, server_writer):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


@contextlib.contextmanager
def delay_proxy(target_url: str, rtt_ms: float, mbit: float | None) -> Iterator[str]:
    """Run the proxy in its own process (so its work does not share the client's event loop); yields its URL."""
    host_port = target_url.split("://", 1)[1]
    command = [sys.executable, "-m", "tether.bench.proxy", "--target", host_port, "--rtt-ms", str(rtt_ms)]
    if mbit:
        command += ["--mbit", str(mbit)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tether.bench.proxy", description="a TCP delay proxy")
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--rtt-ms", type=float, default=40.0)
    parser.add_argument("--mbit", type=float, default=None, help="bandwidth per direction, Mbit/s")
    args = parser.parse_args(argv)
    host, port = args.target.rsplit(":", 1)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, (host, int(port)), args.rtt_ms, args.mbit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
