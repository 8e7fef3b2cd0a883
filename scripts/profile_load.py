"""Where one tether process spends its CPU under the load benchmark's traffic: a sampling profile of the
server (py-spy, from outside the process) while N WebSocket agent loops run against the instant model.

    python scripts/profile_load.py [--connections 1000] [--duration 15] [--out docs/bench/load_profile.json]

Prints the functions with the most samples of their own, the share of samples by layer (tether's own
code, the web stack, the standard library's event loop...), inclusive of what each calls out to, and
the share by job (each sample counted once, for the job of the innermost frame that names one): what a
turn's CPU is spent on.
Needs py-spy (`pip install py-spy`); run it on a quiet machine, like every benchmark.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from tether.bench.load import agent_script, client_processes, wait_ready
from tether.bench.server import tether_server

#: a frame's file -> its layer (first match wins)
LAYERS = (
    ("tether/api/", "tether api (parse, events, framing)"),
    ("tether/core/", "tether core (connection, turn engine)"),
    ("tether/server/", "tether server (pump, routes, protocol)"),
    ("tether/backends/", "tether backend (scripted model)"),
    ("tether/", "tether other"),
    ("starlette/", "starlette"),
    ("fastapi/", "fastapi"),
    ("uvicorn/", "uvicorn"),
    ("websockets/", "websockets"),
    ("asyncio/", "asyncio"),
    ("zlib", "zlib"),
)


#: a job of the turn -> markers of its frames; a sample goes to the first job found from its leaf up
JOBS = (
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("frame out: socket write, frame header, deflate",
     ("CoalescingTransport", "send_frame (tether", "websockets/frames.py", "Protocol.send_text", "ws_compression")),
    ("event JSON (encode_event)", ("encode_event", "sse_frame")),
    ("Response objects (build_response, the echo)", ("build_response", "ResponseObject", "ResponseEcho",
                                                     "api/response.py")),
    ("frame in: websockets' parser, uvicorn's protocol", ("websockets/protocol.py", "websockets/streams.py",
                                                          "data_received", "websockets_sansio_impl")),
    ("request decode and validation", ("decode_client_event", "parse_create", "nesting.py", "tools.py",
                                       "api/request.py", "input_items", "client_events")),
    ("turn preparation (parent, parameters, cache diagnosis)", ("TurnEngine.prepare", "resolve_parent",
                                                                "cache_diagnostics", "cache_baseline",
                                                                "turn_params", "connection_cache")),
    ("model (scripted backend)", ("backends/scripted.py", "backends/tokens.py")),
    ("output events (assembler, sequencer, ids)", ("assembler.py", "api/events.py", "api/ids.py")),
    ("turn plumbing (connection, lanes, control, turn engine, pump)",
     ("core/connection.py", "turn_control.py", "responder.py", "server/ws.py", "lanes.py")),
    ("ASGI, Starlette, FastAPI, uvicorn", ("starlette/", "fastapi/", "uvicorn/")),
    ("event loop (uvloop, asyncio)", ("asyncio/", "uvloop", "runners.py")),
)


def job_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, markers in JOBS:
            if any(marker in frame for marker in markers):
                return name
    return "other"


def layer_of(frame: str) -> str:
    for marker, name in LAYERS:
        if marker in frame:
            return name
    return "other"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/profile_load.py")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds sampled")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--turns-per-loop", type=int, default=10)
    parser.add_argument("--no-deflate", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None, help="JSON of the profile's summary")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    with tempfile.TemporaryDirectory() as tmp, tether_server(agent_script(args.turns_per_loop), sqlite=False) as server:
        url = server.url.replace("http://", "ws://") + "/v1/responses"
        with client_processes(url, args.connections, args.clients, args) as processes:
            wait_ready(processes)
            start = time.time() + 2.0
            end = start + args.duration + 4.0
            for process in processes:
                assert process.stdin is not None
                process.stdin.write(f"go {start} {end}\n")
                process.stdin.flush()
            time.sleep(max(0.0, start - time.time()) + 1.0)
            raw = Path(tmp) / "profile.txt"
            subprocess.run([spy, "record", "--pid", str(server.process.pid), "--duration", str(int(args.duration)),
                            "--rate", str(args.rate), "--format", "raw", "--nonblocking", "-o", str(raw)],
                           check=True, capture_output=True)
            for process in processes:
                process.communicate(timeout=120)
        own: collections.Counter[str] = collections.Counter()
        layers: collections.Counter[str] = collections.Counter()
        jobs: collections.Counter[str] = collections.Counter()
        total = 0
        for line in raw.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            total += count
            own[frames[-1]] += count
            jobs[job_of(frames)] += count
            for name in {layer_of(frame) for frame in frames}:
                layers[name] += count
    if total == 0:
        raise SystemExit("py-spy took no samples")
    print(f"{total} samples of the server at {args.connections} connections "
          "(busy samples only: py-spy leaves out the loop waiting in epoll)")
    print("\nOwn samples, top functions:")
    for frame, count in own.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {frame}")
    print("\nSamples by layer, inclusive (a sample counts for every layer on its stack):")
    for name, count in layers.most_common():
        print(f"  {100 * count / total:5.1f}%  {name}")
    print("\nSamples by job (each sample once):")
    for name, count in jobs.most_common():
        print(f"  {100 * count / total:5.1f}%  {name}")
    if args.out is not None:
        summary = {"connections": args.connections, "samples": total, "rate": args.rate,
                   "own_top": [{"frame": f, "share": c / total} for f, c in own.most_common(args.top)],
                   "layers_inclusive": {n: c / total for n, c in layers.most_common()},
                   "jobs": {n: c / total for n, c in jobs.most_common()}}
        args.out.write_text(json.dumps(summary, indent=1))
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
