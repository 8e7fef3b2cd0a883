"""The inputs of the capacity model (docs/capacity.md), measured on one tether process with an instant
scripted model: memory per idle WebSocket connection, memory per cached lane (a conversation's items
and its rendered messages, kept hot on the connection), and server CPU per agent turn.

    python -m tether.bench.capacity [--connections 200] [--turns 20] [--tool-output-bytes 2000]
        [--backend upstream|scripted] [--out DIR]

Each of `--connections` WebSocket connections (store:false, as Codex sends) first sits idle, then runs
one agent conversation of `--turns` turns on its default lane, each turn answering the model's tool
call with a tool output of `--tool-output-bytes`. Memory is the server's resident set (VmRSS) before
the connections, with them idle, and with every lane holding its whole conversation; CPU is the
server's own user + system time over the turns (the clients run in this process, not the server's).
With `--backend upstream` (the default) tether talks to a deterministic chat-completions server in a
process of its own (`chat_upstream`), as it would to vLLM: each lane then also holds the conversation
rendered as chat messages, and the CPU figure is tether's alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from ..processes import free_port, serving_process
from .clients import WebSocketTransport
from .report import machine_note, wide_console, write_json
from .server import ServerProcess, script_file, tether_server
from .turn_cost import TOOLS, fast_script, filler

SETTLE_S = 0.5  # lets the server finish post-terminal work before memory is read
BATCH = 50  # connections opened at once


async def open_all(server: ServerProcess, count: int) -> list[WebSocketTransport]:
    ws_url = server.url.replace("http://", "ws://") + "/v1/responses"
    transports: list[WebSocketTransport] = []
    for start in range(0, count, BATCH):
        batch = min(BATCH, count - start)
        transports += await asyncio.gather(*(WebSocketTransport.open(ws_url) for _ in range(batch)))
    return transports


async def converse(transport: WebSocketTransport, turns: int, output_bytes: int, seed: int) -> int:
    """One agent conversation on the connection's lane; returns its items' JSON size (what the lane holds)."""
    items: list[dict[str, Any]] = []
    new: list[dict[str, Any]] = [{"type": "message", "role": "user",
                                  "content": [{"type": "input_text", "text": "Fix the failing test."}]}]
    previous: str | None = None
    for turn in range(turns):
        body = {"model": "tether-scripted", "instructions": "You are a coding agent.", "tools": TOOLS,
                "store": False, "input": new, "previous_response_id": previous}
        response = (await transport.create(body)).response
        items += new + response["output"]
        previous = str(response["id"])
        call = next((item for item in response["output"] if item.get("type") == "function_call"), None)
        if call is None:
            break
        new = [{"type": "function_call_output", "call_id": call["call_id"],
                "output": filler(output_bytes, seed * 1000 + turn)}]
    return len(orjson.dumps(items))


async def measure(server: ServerProcess, connections: int, turns: int, output_bytes: int) -> dict[str, Any]:
    await asyncio.sleep(SETTLE_S)
    rss_start = server.rss_bytes()
    transports = await open_all(server, connections)
    try:
        await asyncio.sleep(SETTLE_S)
        rss_idle = server.rss_bytes()
        cpu_before, wall_before = server.cpu_seconds(), time.perf_counter()
        sizes = await asyncio.gather(*(converse(t, turns, output_bytes, n) for n, t in enumerate(transports)))
        wall = time.perf_counter() - wall_before
        await asyncio.sleep(SETTLE_S)
        cpu = server.cpu_seconds() - cpu_before
        rss_lanes = server.rss_bytes()
    finally:
        await asyncio.gather(*(t.close() for t in transports), return_exceptions=True)
    total_turns = connections * turns
    conversation_bytes = sum(sizes) / len(sizes)
    per_lane = (rss_lanes - rss_idle) / connections
    return {
        "connections": connections, "turns_per_conversation": turns, "tool_output_bytes": output_bytes,
        "rss_start_bytes": rss_start, "rss_idle_bytes": rss_idle, "rss_lanes_bytes": rss_lanes,
        "bytes_per_idle_connection": (rss_idle - rss_start) / connections,
        "bytes_per_cached_lane": per_lane,
        "conversation_json_bytes": conversation_bytes,
        "memory_per_conversation_byte": per_lane / conversation_bytes if conversation_bytes else None,
        "turns": total_turns, "server_cpu_s": cpu, "wall_s": wall,
        "server_cpu_ms_per_turn": cpu * 1000 / total_turns,
        "turns_per_core_second": total_turns / cpu if cpu > 0 else None,
    }


def print_table(result: dict[str, Any], console: Console) -> None:
    shape = (f"{result['connections']} connections x {result['turns_per_conversation']} turns, "
             f"tool outputs of {result['tool_output_bytes']} bytes")
    table = Table(title=f"Capacity inputs ({result['backend']} backend): {shape}")
    table.add_column("quantity")
    table.add_column("measured", justify="right")
    kib = 1024
    table.add_row("memory per idle WebSocket connection", f"{result['bytes_per_idle_connection'] / kib:.1f} KiB")
    table.add_row("memory per cached lane (whole conversation)", f"{result['bytes_per_cached_lane'] / kib:.1f} KiB")
    table.add_row("conversation size as JSON", f"{result['conversation_json_bytes'] / kib:.1f} KiB")
    ratio = result["memory_per_conversation_byte"]
    table.add_row("lane memory per byte of conversation JSON", f"{ratio:.2f}" if ratio else "n/a")
    table.add_row("server CPU per turn", f"{result['server_cpu_ms_per_turn']:.2f} ms")
    per_core = result["turns_per_core_second"]
    table.add_row("turns per second per core", f"{per_core:.0f}" if per_core else "n/a")
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tether.bench.capacity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--turns", type=int, default=20, help="turns of each connection's conversation")
    parser.add_argument("--tool-output-bytes", type=int, default=2000)
    parser.add_argument("--backend", choices=["upstream", "scripted"], default="upstream")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="folder for the JSON")
    args = parser.parse_args(argv)
    console = wide_console()
    connections, turns = max(1, args.connections), max(1, args.turns)
    script = fast_script(turns + 2)
    with contextlib.ExitStack() as stack:
        serve_args: tuple[str, ...] = ()
        if args.backend == "upstream":
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tether-capacity-")))
            port = free_port()
            upstream = f"http://127.0.0.1:{port}"
            stack.enter_context(serving_process(
                [sys.executable, "-m", "tether.bench.chat_upstream", "--port", str(port), "--script",
                 str(script_file(script, folder))], folder / "upstream.log", upstream + "/health"))
            serve_args = ("--backend", "upstream", "--upstream-url", upstream + "/v1")  # the later flag wins
        server = stack.enter_context(tether_server(script, sqlite=False, serve_args=serve_args))
        console.print(f"capacity: tether server pid {server.pid} at {server.url}, backend {args.backend}")
        result = asyncio.run(measure(server, connections, turns, max(1, args.tool_output_bytes)))
    result = {"benchmark": "capacity", "machine": machine_note(), "backend": args.backend, **result}
    print_table(result, console)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(result, args.out / "capacity.json")
    console.print(f"wrote {args.out / 'capacity.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
