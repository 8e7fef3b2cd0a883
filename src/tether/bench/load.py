"""One tether process under load: N concurrent WebSocket agent loops against an instant scripted model.

For each connection count a fresh server starts; client processes (`load_client`, in processes of
their own so their CPU is not the server's) open the connections, then run agent loops back to back
for a measured window after a warm-up. Reported: turns/s, events/s, turn latency p50/p99 (closed
loops: each connection sends its next turn when the last one ends), the server's CPU (from /proc,
against its PID alone) and the clients', and the server's memory with the connections idle (before
the loops) and at its peak.

    python -m tether.bench.load [--connections 100,1000,3000] [--duration 20] [--clients 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from .report import machine_note, wide_console, write_json
from .server import ServerProcess, cpu_seconds_of, tether_server
from .server_options import Variant, variant_server

SAMPLE_S = 0.25  # how often the server's memory is read during the window


def agent_script(turns_per_loop: int) -> dict[str, Any]:
    """An instant model: a tool call each turn, then a short answer to end the loop."""
    call = {"text": "Checking the code.", "tool_calls": [{"name": "read_file", "arguments": {"path": "src/app.py"}}]}
    turns = [call] * (turns_per_loop - 1) + [{"text": "Fixed: the test passes now."}]
    return {"turns": turns, "tokens_per_second": 1e9, "ttft_ms": 0, "prefill_tokens_per_second": None}


@contextlib.contextmanager
def client_processes(url: str, connections: int, clients: int, args: argparse.Namespace) -> Iterator[
        list[subprocess.Popen[str]]]:
    shares = [connections // clients + (1 if i < connections % clients else 0) for i in range(clients)]
    processes = []
    try:
        for share in (s for s in shares if s > 0):
            command = [sys.executable, "-m", "tether.bench.load_client", "--url", url, "--connections", str(share),
                       "--turns-per-loop", str(args.turns_per_loop)]
            if args.no_deflate:
                command.append("--no-deflate")
            processes.append(subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def wait_ready(processes: Sequence[subprocess.Popen[str]]) -> None:
    for process in processes:
        assert process.stdout is not None
        line = process.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"a load client failed to connect (it said {line!r})")


def measure(server: ServerProcess, connections: int, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    url = server.url.replace("http://", "ws://") + "/v1/responses"
    rss_empty = server.rss_bytes()
    with client_processes(url, connections, args.clients, args) as processes:
        wait_ready(processes)
        time.sleep(1.0)  # let the last handshakes settle before the idle reading
        rss_idle = server.rss_bytes()
        start = time.time() + args.warmup
        end = start + args.duration
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(f"go {start} {end}\n")
            process.stdin.flush()
        time.sleep(max(0.0, start - time.time()))
        server_cpu0 = server.cpu_seconds()
        client_cpu0 = sum(cpu_seconds_of(p.pid) for p in processes)
        rss_peak = rss_idle
        while time.time() < end:
            rss_peak = max(rss_peak, server.rss_bytes())
            time.sleep(min(SAMPLE_S, max(0.0, end - time.time())))
        server_cpu = server.cpu_seconds() - server_cpu0
        client_cpu = sum(cpu_seconds_of(p.pid) for p in processes) - client_cpu0
        results = []
        for process in processes:
            out, _ = process.communicate(timeout=120)
            results.append(orjson.loads(out.strip().splitlines()[-1]))
    latencies = sorted(lat for r in results for lat in r["latencies_ms"])
    events = sum(r["events"] for r in results)
    errors = [e for r in results for e in r["errors"]]
    turns = len(latencies)
    point = {
        "connections": connections, "window_s": args.duration, "turns": turns, "events": events,
        "turns_per_s": turns / args.duration, "events_per_s": events / args.duration,
        "events_per_turn": events / turns if turns else 0.0,
        "p50_ms": _quantile(latencies, 0.50), "p99_ms": _quantile(latencies, 0.99),
        "mean_ms": statistics.fmean(latencies) if latencies else 0.0,
        "server_cpu_percent": 100 * server_cpu / args.duration,
        "server_cpu_ms_per_turn": 1000 * server_cpu / turns if turns else 0.0,
        "server_cpu_us_per_event": 1e6 * server_cpu / events if events else 0.0,
        "client_cpu_percent": 100 * client_cpu / args.duration,
        "rss_empty_mib": rss_empty / 2**20, "rss_idle_mib": rss_idle / 2**20, "rss_peak_mib": rss_peak / 2**20,
        "rss_kib_per_idle_connection": (rss_idle - rss_empty) / 1024 / connections,
        "errors": errors,
    }
    console.print(f"  {connections:>5} connections: {point['turns_per_s']:,.0f} turns/s, "
                  f"{point['events_per_s']:,.0f} events/s, p99 {point['p99_ms']:.0f} ms, "
                  f"server {point['server_cpu_ms_per_turn']:.3f} CPU ms/turn"
                  + (f", {len(errors)} errors (first: {errors[0]})" if errors else ""))
    return point


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(q * len(values)))]


def print_table(points: Sequence[dict[str, Any]], console: Console) -> None:
    table = Table(title="One tether process, instant model, closed agent loops")
    headers = ("connections", "turns/s", "events/s", "events/turn", "p50 ms", "p99 ms", "server CPU %",
               "server CPU ms/turn", "client CPU %", "RSS idle MiB", "RSS peak MiB", "KiB / idle conn")
    for header in headers:
        table.add_column(header, justify="right")
    for p in points:
        table.add_row(f"{p['connections']:,}", f"{p['turns_per_s']:,.0f}", f"{p['events_per_s']:,.0f}",
                      f"{p['events_per_turn']:.1f}", f"{p['p50_ms']:.1f}", f"{p['p99_ms']:.1f}",
                      f"{p['server_cpu_percent']:.0f}", f"{p['server_cpu_ms_per_turn']:.3f}",
                      f"{p['client_cpu_percent']:.0f}", f"{p['rss_idle_mib']:.0f}", f"{p['rss_peak_mib']:.0f}",
                      f"{p['rss_kib_per_idle_connection']:.1f}")
    console.print(table)


def plot(points: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p["connections"] for p in points]
    fig, (rate, latency) = plt.subplots(1, 2, figsize=(11, 4))
    rate.plot(xs, [p["events_per_s"] for p in points], marker="o", label="events/s")
    rate.plot(xs, [p["turns_per_s"] for p in points], marker="s", label="turns/s")
    rate.set_xscale("log")
    rate.set_xlabel("concurrent WebSocket agent loops")
    rate.set_ylabel("per second")
    rate.set_title("throughput of one tether process", fontsize=10)
    rate.grid(True, which="both", alpha=0.3)
    rate.legend(fontsize=8)
    latency.plot(xs, [p["p50_ms"] for p in points], marker="o", label="p50")
    latency.plot(xs, [p["p99_ms"] for p in points], marker="s", label="p99")
    latency.set_xscale("log")
    latency.set_yscale("log")
    latency.set_xlabel("concurrent WebSocket agent loops")
    latency.set_ylabel("turn latency, ms")
    latency.set_title("turn latency (closed loops, instant model)", fontsize=10)
    latency.grid(True, which="both", alpha=0.3)
    latency.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@contextlib.contextmanager
def load_server(args: argparse.Namespace) -> Iterator[ServerProcess]:
    """`tether serve` on the instant model, or with --no-coalesce the same app as `server_options` runs
    its variants (the one way to turn the write coalescing off, which `tether serve` does not offer)."""
    script = agent_script(args.turns_per_loop)
    if not args.no_coalesce:
        with tether_server(script, sqlite=False, serve_args=["--ws-compression", args.ws_compression]) as server:
            yield server
        return
    variant = Variant("uncoalesced", compression=args.ws_compression, coalesce=False)
    with tempfile.TemporaryDirectory(prefix="tether-load-") as tmp, variant_server(variant, script, Path(tmp)) as s:
        yield s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tether.bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", default="100,1000,3000", help="connection counts, comma-separated")
    parser.add_argument("--duration", type=float, default=20.0, help="measured window per count (s)")
    parser.add_argument("--warmup", type=float, default=3.0, help="loops run this long before the window (s)")
    parser.add_argument("--clients", type=int, default=2, help="client processes the connections are spread over")
    parser.add_argument("--turns-per-loop", type=int, default=10)
    parser.add_argument("--no-deflate", action="store_true", help="clients do not offer permessage-deflate")
    parser.add_argument("--ws-compression", choices=["auto", "deflate", "off"], default="auto",
                        help="the server's --ws-compression (auto: none for these loopback clients)")
    parser.add_argument("--name", default="load", help="file name of the JSON and plot (without suffix)")
    parser.add_argument("--no-coalesce", action="store_true",
                        help="the server writes each WebSocket frame at once instead of one write per loop pass")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="folder for load.json and load.png")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.connections.split(",") if x.strip()]
    console = wide_console()
    console.print(f"load: {machine_note()}; {args.clients} client processes, {args.turns_per_loop}-turn loops, "
                  f"clients {'without' if args.no_deflate else 'offering'} deflate, server --ws-compression "
                  f"{args.ws_compression}")
    points = []
    for count in counts:
        with load_server(args) as server:
            points.append(measure(server, count, args, console))
    print_table(points, console)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json({"benchmark": "load", "machine": machine_note(), "clients": args.clients,
                "turns_per_loop": args.turns_per_loop, "client_deflate": not args.no_deflate,
                "ws_compression": args.ws_compression, "coalesced_writes": not args.no_coalesce,
                "warmup_s": args.warmup, "points": points},
               args.out / f"{args.name}.json")
    plot(points, args.out / f"{args.name}.png")
    console.print(f"wrote {args.out / args.name}.json and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
