"""One client process of the load benchmark: K WebSocket connections, each running agent loops back to
back (a first turn, then continuations with previous_response_id and tool outputs), timed per turn.

It connects all K, prints `ready`, waits for `go START END` (wall-clock seconds) on stdin, runs loops
until END, and prints one JSON line: the turns that completed within [START, END] (their latencies),
the events received in that window and any errors. `python -m tether.bench.load` runs these.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import select
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from ..api.events import TERMINAL_EVENT_TYPES

CONNECT_BATCH = 100  # connections opened at once: a burst of thousands overflows the listen backlog
TOOLS = [
    {"type": "function", "name": name, "description": f"{description} Paths are relative to the workspace root.",
     "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}
    for name, description in (("read_file", "Read a file."), ("list_dir", "List a directory."),
                              ("run_tests", "Run the test suite for a path."))
]
INSTRUCTIONS = ("You are a coding agent. Read the code before changing it, run the tests after every change, "
                "and answer with a short summary of what you did. ") * 12
TOOL_OUTPUT = "def handler(request):\n    return render(request, 'page.html', status=200)\n" * 8


@dataclass
class Tally:
    start: float = 0.0
    end: float = float("inf")
    latencies_ms: list[float] = field(default_factory=list)
    events: int = 0
    errors: list[str] = field(default_factory=list)

    def in_window(self, at: float) -> bool:
        return self.start <= at <= self.end


async def turn(conn: ClientConnection, body: dict[str, Any], tally: Tally) -> dict[str, Any]:
    sent_at = time.time()
    await conn.send(orjson.dumps(body).decode())
    events = 0
    while True:
        event = orjson.loads(await conn.recv())
        events += 1
        if event["type"] in TERMINAL_EVENT_TYPES:
            break
    done_at = time.time()
    if tally.in_window(done_at):
        tally.events += events
        tally.latencies_ms.append((done_at - sent_at) * 1000)
    if event["type"] != "response.completed":
        raise RuntimeError(f"turn ended with {event['type']}: {orjson.dumps(event)[:300]!r}")
    response: dict[str, Any] = event["response"]
    return response


async def agent_loops(conn: ClientConnection, turns_per_loop: int, tally: Tally) -> None:
    """Loops of `turns_per_loop` turns until the window ends; the model answers each tool call."""
    base = {"type": "response.create", "model": "tether-scripted", "instructions": INSTRUCTIONS, "tools": TOOLS,
            "store": False}
    while time.time() < tally.end:
        response = await turn(conn, {**base, "input": "Fix the failing test in tests/test_app.py."}, tally)
        for _ in range(turns_per_loop - 1):
            if time.time() >= tally.end:
                return
            outputs = [{"type": "function_call_output", "call_id": item["call_id"], "output": TOOL_OUTPUT}
                       for item in response["output"] if item["type"] == "function_call"]
            if not outputs:
                break
            response = await turn(conn, {**base, "previous_response_id": response["id"], "input": outputs}, tally)


async def open_all(url: str, count: int, deflate: bool) -> list[ClientConnection]:
    connections: list[ClientConnection] = []
    for start in range(0, count, CONNECT_BATCH):
        batch = min(CONNECT_BATCH, count - start)
        connections += await asyncio.gather(*(
            connect(url, compression="deflate" if deflate else None, max_size=None, open_timeout=120,
                    ping_interval=None)
            for _ in range(batch)
        ))
    return connections


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    connections = await open_all(args.url, args.connections, not args.no_deflate)
    print("ready", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    _, start, end = line.split()
    tally.start, tally.end = float(start), float(end)
    results = await asyncio.gather(*(agent_loops(c, args.turns_per_loop, tally) for c in connections),
                                   return_exceptions=True)
    tally.errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)][:20]
    for conn in connections:
        with contextlib.suppress(Exception):
            await conn.close()
    return {"latencies_ms": tally.latencies_ms, "events": tally.events, "errors": tally.errors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tether.bench.load_client")
    parser.add_argument("--url", required=True, help="ws://HOST:PORT/v1/responses")
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--turns-per-loop", type=int, default=10)
    parser.add_argument("--no-deflate", action="store_true")
    args = parser.parse_args(argv)
    try:
        import uvloop  # the client's own overhead is not what is measured: the fastest loop there is
    except ImportError:
        result = asyncio.run(main_async(args))
    else:
        result = uvloop.run(main_async(args))
    write_all(sys.stdout.fileno(), orjson.dumps(result) + b"\n")
    return 0


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data`, waiting while the pipe is full. The result line is larger than a pipe holds
    and the parent reads the clients one after another; after uvloop has run, a plain
    `sys.stdout.write` of it stopped at 64 KiB and lost the rest."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[written:]


if __name__ == "__main__":
    sys.exit(main())
