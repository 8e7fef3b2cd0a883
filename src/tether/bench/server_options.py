"""Server settings side by side: WebSocket compression variants, event loops and HTTP parsers, each in
its own server process (`variant_server`), the same rollouts through each, the variants' order
rotated every repeat. This is how tether's defaults were picked (BENCHMARKS.md section 5).

    python -m tether.bench.server_options [--variants standard,off,deflate,...] [--repeats 3]
        [--profiles instant,1000tps] [--networks loopback,wan] [--modes ws_cached,http_full]

A variant is NAME=LOOP/HTTP/COMPRESSION (see `variant_server`), or one of the names in VARIANTS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import statistics
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..processes import free_port, serving_process
from .modes import MODES, Mode
from .profiles import MODEL_PROFILES, NETWORK_PROFILES, ModelProfile, NetworkProfile
from .report import machine_note, wide_console, write_json
from .rollout import RolloutRecord, run_rollout
from .runner import endpoint, warm_prefix
from .server import ServerProcess, script_file
from .workloads import Workload, load


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    loop: str = "auto"
    http: str = "auto"
    compression: str = "deflate"
    coalesce: bool = True  # one write per pass of the event loop (False: one per frame)


VARIANTS = {v.name: v for v in (
    Variant("standard", compression="standard"),
    Variant("off", compression="off"),
    Variant("deflate"),
    Variant("deflate-all", compression="deflate:min_size=0"),
    Variant("deflate-echo1", compression="deflate:echo_level=1"),
    Variant("asyncio-h11", loop="asyncio", http="h11"),
    Variant("deflate-uncoalesced", coalesce=False),
    Variant("off-uncoalesced", compression="off", coalesce=False),
)}


def parse_variant(text: str) -> Variant:
    if "=" not in text:
        if text not in VARIANTS:
            raise SystemExit(f"server_options: unknown variant {text!r} (known: {', '.join(VARIANTS)})")
        return VARIANTS[text]
    name, spec = text.split("=", 1)
    loop, http, compression = spec.split("/", 2)
    return Variant(name, loop, http, compression)


@contextlib.contextmanager
def variant_server(variant: Variant, script: dict[str, Any], directory: Path) -> Iterator[ServerProcess]:
    port = free_port()
    folder = directory / variant.name
    folder.mkdir()
    log_path = folder / "server.log"
    command = [sys.executable, "-m", "tether.bench.variant_server", "--script", str(script_file(script, folder)),
               "--port", str(port), "--loop", variant.loop, "--http", variant.http,
               "--compression", variant.compression, *([] if variant.coalesce else ["--no-coalesce"])]
    url = f"http://127.0.0.1:{port}"
    with serving_process(command, log_path, url + "/health") as process:
        yield ServerProcess(url, process, log_path)


async def run_all(
    variants: Sequence[Variant], profiles: Sequence[ModelProfile], networks: Sequence[NetworkProfile],
    modes: Sequence[Mode], workload: Workload, repeats: int, console: Console,
) -> list[tuple[str, RolloutRecord]]:
    records: list[tuple[str, RolloutRecord]] = []
    for profile in profiles:
        with tempfile.TemporaryDirectory(prefix="tether-options-") as tmp, contextlib.ExitStack() as stack:
            servers = {v.name: stack.enter_context(variant_server(v, workload.script(profile), Path(tmp)))
                       for v in variants}
            urls = {(v.name, net.name): stack.enter_context(endpoint(servers[v.name], net))
                    for v in variants for net in networks}
            for server in servers.values():
                await warm_prefix(server, workload)
            for repeat in range(repeats):
                shift = repeat % len(variants)
                for variant in [*variants[shift:], *variants[:shift]]:
                    for net in networks:
                        for mode in modes:
                            record = RolloutRecord(mode.name, net.name, workload.name, profile.name, repeat)
                            await run_rollout(mode, urls[(variant.name, net.name)], servers[variant.name],
                                              workload, profile, record, remote=net.proxied)
                            records.append((variant.name, record))
                console.print(f"  {profile.name}: repeat {repeat + 1} of {repeats} done")
    return records


def summarize(records: Sequence[tuple[str, RolloutRecord]]) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, str, str, str], list[RolloutRecord]] = defaultdict(list)
    for variant, record in records:
        grouped[(record.profile, record.network, record.mode, variant)].append(record)
    rows = []
    for (profile, network, mode, variant), group in grouped.items():
        turns = max(1, len(group[0].turns))
        rows.append({
            "profile": profile, "network": network, "mode": mode, "variant": variant, "repeats": len(group),
            "rollout_s": statistics.median(r.rollout_s for r in group),
            "overhead_ms_per_turn": statistics.median(sum(t.overhead_ms for t in r.turns) / turns for r in group),
            "kb_received": statistics.median(sum(t.bytes_received for t in r.turns) / 1024 for r in group),
            "kb_sent": statistics.median(sum(t.bytes_sent for t in r.turns) / 1024 for r in group),
            "server_cpu_ms_per_turn": statistics.median(r.server_cpu_ms / turns for r in group),
        })
    return rows


def print_rows(rows: Sequence[dict[str, Any]], console: Console) -> None:
    table = Table(title="Server variants side by side (medians; the client offers deflate in ws_cached)")
    for header in ("profile", "network", "mode", "variant", "rollout s", "overhead ms/turn", "KB received",
                   "KB sent", "server CPU ms/turn"):
        table.add_column(header, justify="right" if header[0].isupper() or " " in header else "left")
    last = None
    for row in sorted(rows, key=lambda r: (r["profile"], r["network"], r["mode"])):
        if last is not None and last != (row["profile"], row["network"], row["mode"]):
            table.add_section()
        last = (row["profile"], row["network"], row["mode"])
        table.add_row(row["profile"], row["network"], row["mode"], row["variant"], f"{row['rollout_s']:.3f}",
                      f"{row['overhead_ms_per_turn']:.2f}", f"{row['kb_received']:,.0f}", f"{row['kb_sent']:,.0f}",
                      f"{row['server_cpu_ms_per_turn']:.2f}")
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tether.bench.server_options", description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help="names or NAME=LOOP/HTTP/COMPRESSION")
    parser.add_argument("--profiles", default="instant,1000tps")
    parser.add_argument("--networks", default="loopback,wan")
    parser.add_argument("--modes", default="ws_cached,http_full")
    parser.add_argument("--workload", default="fix-failing-test")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="folder for server_options.json")
    args = parser.parse_args(argv)
    variants = [parse_variant(v.strip()) for v in args.variants.split(",") if v.strip()]
    profiles = [MODEL_PROFILES[p.strip()] for p in args.profiles.split(",") if p.strip()]
    networks = [NETWORK_PROFILES[n.strip()] for n in args.networks.split(",") if n.strip()]
    known = {m.name: m for m in MODES}
    modes = [known[m.strip()] for m in args.modes.split(",") if m.strip()]
    workload = load(args.workload)
    console = wide_console()
    console.print(f"server_options: {machine_note()}; {workload.name}, {args.repeats} repeats")
    records = asyncio.run(run_all(variants, profiles, networks, modes, workload, max(1, args.repeats), console))
    rows = summarize(records)
    print_rows(rows, console)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json({"benchmark": "server_options", "machine": machine_note(), "workload": workload.name,
                "variants": [dataclasses.asdict(v) for v in variants],
                "rows": rows, "rollouts": [{"variant": v, **r.to_dict()} for v, r in records]},
               args.out / "server_options.json")
    console.print(f"wrote {args.out / 'server_options.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
