"""`tether bench`: replay agent workloads against a tether server in a separate process, every mode in
the same run, on each network profile, at each model speed; medians over repeats.

Order: one server per (model profile, workload); within it, repeats outermost, then networks, then the
modes in an order rotated every repeat, so drift and noise spread evenly over the modes compared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .modes import HTTP_FULL, MODES, Conversation, Mode
from .profiles import DEFAULT_NETWORKS, MODEL_PROFILES, NETWORK_PROFILES, SMOKE_PROFILE, ModelProfile, NetworkProfile
from .proxy import delay_proxy
from .report import machine_note, wide_console, write_json
from .rollout import RolloutRecord, run_rollout
from .server import ServerProcess, tether_server
from .summary import print_summary, summarize, target_verdicts
from .workloads import SHIPPED, Workload, load


def add_bench_parser(sub: Any) -> None:
    bench = sub.add_parser("bench", help="replay agent workloads against a tether server, mode against mode; "
                                         "`tether bench engine`: the embedded engine against llama-server; "
                                         "`tether bench scale`: agents on llama-server replicas, placement "
                                         "against placement")
    bench.add_argument("suite", nargs="?", choices=("agents", "engine", "scale"), default="agents",
                       help="agents (default): workload replay, mode against mode; engine, scale: see the groups "
                            "below")
    bench.add_argument("--workloads", default=",".join(SHIPPED), help="shipped names or JSON paths, comma-separated")
    bench.add_argument("--profiles", default=",".join(MODEL_PROFILES), help=f"of {', '.join(MODEL_PROFILES)}")
    bench.add_argument("--networks", default=",".join(DEFAULT_NETWORKS), help=f"of {', '.join(NETWORK_PROFILES)}")
    names = ", ".join(m.name for m in MODES)
    bench.add_argument("--modes", default=names.replace(" ", ""), help=f"of {names}")
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--out", type=Path, default=Path("bench-results"), help="folder for JSON and plots")
    bench.add_argument("--smoke", action="store_true", help="CI smoke: tiny workload, fast model, 1 repeat")
    bench.add_argument("--no-deflate", action="store_true",
                       help="WebSocket modes do not offer permessage-deflate (by default they do, as Codex does)")
    bench.add_argument("--ws-compression", choices=("auto", "deflate", "off"), default="auto",
                       help="the server's --ws-compression (auto: none on loopback, deflate on the WAN profiles)")
    from .engine_bench import add_engine_arguments

    add_engine_arguments(bench)
    from .scale import add_scale_arguments

    add_scale_arguments(bench)


def _pick(names: str, known: dict[str, Any], what: str) -> list[Any]:
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise SystemExit(f"tether bench: unknown {what} {', '.join(unknown)} (known: {', '.join(known)})")
    return [known[name] for name in chosen]


@contextlib.contextmanager
def endpoint(server: ServerProcess, network: NetworkProfile) -> Iterator[str]:
    if not network.proxied:
        yield server.url
        return
    with delay_proxy(server.url, network.rtt_ms, network.mbit_per_s) as url:
        yield url


async def warm_prefix(server: ServerProcess, workload: Workload) -> None:
    """One turn of the first request, so every rollout finds the shared prompt prefix cached, as an
    engine serving many sessions of one agent would; no mode pays the cold prefill for going first."""
    transport = await HTTP_FULL.open(server.url)
    try:
        await transport.create(Conversation(workload.base()).body(HTTP_FULL, list(workload.input)))
    finally:
        await transport.close()


async def run_matrix(
    profiles: Sequence[ModelProfile], workloads: Sequence[Workload], networks: Sequence[NetworkProfile],
    modes: Sequence[Mode], repeats: int, console: Console, ws_compression: str = "auto",
) -> list[RolloutRecord]:
    records: list[RolloutRecord] = []
    total = len(profiles) * repeats * len(networks) * len(modes) * sum(w.model_turns for w in workloads)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("turns", total=total)
        for profile in profiles:
            for workload in workloads:
                serve_args = ("--ws-compression", ws_compression)
                with tether_server(workload.script(profile), serve_args=serve_args) as server, \
                        contextlib.ExitStack() as stack:
                    urls = {net.name: stack.enter_context(endpoint(server, net)) for net in networks}
                    await warm_prefix(server, workload)
                    for repeat in range(repeats):
                        for net in networks:
                            shift = repeat % len(modes)
                            for mode in [*modes[shift:], *modes[:shift]]:
                                progress.update(task, description=f"{profile.name} {workload.name} {net.name} "
                                                                  f"{mode.name} #{repeat + 1}")
                                record = RolloutRecord(mode.name, net.name, workload.name, profile.name, repeat)
                                records.append(await run_rollout(
                                    mode, urls[net.name], server, workload, profile, record,
                                    on_turn=lambda: progress.advance(task), remote=net.proxied,
                                ))
    return records


def run_bench(args: argparse.Namespace) -> int:
    if args.suite == "engine":
        from .engine_bench import run_engine_bench

        return run_engine_bench(args)
    if args.suite == "scale":
        from .scale import run_scale_bench

        return run_scale_bench(args)
    console = wide_console()
    if args.smoke:
        profiles, workloads, repeats = [SMOKE_PROFILE], [load("smoke")], 1
    else:
        profiles = _pick(args.profiles, MODEL_PROFILES, "profile")
        workloads = [load(name.strip()) for name in args.workloads.split(",") if name.strip()]
        repeats = max(1, args.repeats)
    networks = _pick(args.networks, NETWORK_PROFILES, "network")
    modes = _pick(args.modes, {m.name: m for m in MODES}, "mode")
    if args.no_deflate:
        modes = [dataclasses.replace(m, deflate=False) if m.transport == "ws" else m for m in modes]
    console.print(f"tether bench: {machine_note()}")
    for net in networks:
        console.print(f"  network {net.name}: {net.describe()}")
    for profile in profiles:
        console.print(f"  model {profile.name}: {profile.tokens_per_second:g} tok/s, ttft {profile.ttft_ms:g} ms, "
                      f"prefill {profile.prefill_tokens_per_second:g} tok/s")
    records = asyncio.run(run_matrix(profiles, workloads, networks, modes, repeats, console, args.ws_compression))
    summary = summarize(records, modes, {net.name: net for net in networks})
    print_summary(summary, console)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "tether bench", "machine": machine_note(), "repeats": repeats,
        "ws_compression": args.ws_compression,
        "profiles": [_profile_dict(p) for p in profiles],
        "networks": {net.name: net.describe() for net in networks},
        "modes": {m.name: m.label if m.deflate or m.transport != "ws" else f"{m.label} (--no-deflate)"
                  for m in modes},
        "workloads": {w.name: {"tool_calls": w.tool_calls, "model_turns": w.model_turns} for w in workloads},
        "summary": summary, "targets": target_verdicts(summary), "rollouts": [r.to_dict() for r in records],
    }
    write_json(result, args.out / "bench.json")
    from .plots import plot_rollouts, plot_turns

    plot_turns(records, modes, args.out / "turn_latency.png", field="wait_ms")
    plot_turns(records, modes, args.out / "turn_overhead.png", field="overhead_ms")
    plot_rollouts(summary, modes, args.out / "rollout_time.png")
    console.print(f"wrote {args.out / 'bench.json'}, turn_latency.png, turn_overhead.png, rollout_time.png")
    return 0


def _profile_dict(profile: ModelProfile) -> dict[str, Any]:
    return {"name": profile.name, "tokens_per_second": profile.tokens_per_second, "ttft_ms": profile.ttft_ms,
            "prefill_tokens_per_second": profile.prefill_tokens_per_second}
