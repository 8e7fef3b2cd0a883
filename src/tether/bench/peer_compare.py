"""tether against LiteLLM's proxy, both in front of the same chat-completions upstream
(`python -m tether.bench.peer_compare`).

One `chat_upstream` process plays the model; tether (`--backend upstream`) and LiteLLM (its Responses ->
chat-completions bridge) each bridge `/v1/responses` to it. The same agent conversation runs through
every mode, modes interleaved within each repeat. Per turn the client's wait is measured, the model's
own time is read from the upstream's ledger, and the difference is the proxy's per-turn overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect

from ..processes import free_port, serving_process
from . import workloads
from .clients import BenchError, HttpSseTransport, Transport, WebSocketTransport
from .modes import Conversation, Mode, function_calls, tool_output, user_message
from .peer_report import report
from .peers.litellm_peer import MODEL_NAME as LITELLM_MODEL
from .peers.litellm_peer import litellm_proxy
from .profiles import ModelProfile

UPSTREAM_MODEL = "bench-model"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class PeerMode:
    name: str
    server: str  # "tether" or "litellm"
    mode: Mode  # transport, store, chained


def _peer(name: str, label: str, transport: str, store: bool, chained: bool) -> PeerMode:
    return PeerMode(name, name.split("_")[0], Mode(name, label, transport, store, chained))


PEER_MODES: tuple[PeerMode, ...] = (
    _peer("tether_ws", "tether WS previous_response_id (store:false)", "ws", False, True),
    _peer("litellm_ws", "LiteLLM WS previous_response_id (store:false)", "ws", False, True),
    _peer("tether_http", "tether HTTP previous_response_id (store:true)", "http", True, True),
    _peer("litellm_http_chained", "LiteLLM HTTP previous_response_id (store:true)", "http", True, True),
    _peer("tether_http_full", "tether HTTP full context (store:false)", "http", False, False),
    _peer("litellm_http_full", "LiteLLM HTTP full context (store:false)", "http", False, False),
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    api_key: str
    model: str  # the model name a client asks this server for
    pid: int


@dataclass(frozen=True, slots=True)
class TurnRecord:
    mode: str
    repeat: int
    turn: int
    wait_s: float
    model_s: float  # the upstream's own time for this turn's completions
    overhead_s: float
    upstream_calls: int
    context_ok: bool  # the upstream saw the whole conversation (its turn index matched)
    prompt_tokens: int
    bytes_sent: int
    bytes_received: int


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants."""
    total = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            raw = Path(f"/proc/{current}/stat").read_text()
            fields = raw[raw.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(child) for child in (task / "children").read_text().split())
    return total


class Ledger:
    """The upstream's record of completions, read after each turn."""

    def __init__(self, url: str) -> None:
        self.client = httpx.AsyncClient(base_url=url, timeout=10.0)
        self.last = 0

    async def read(self) -> list[dict[str, Any]]:
        data = orjson.loads((await self.client.get("/bench/ledger", params={"after": self.last})).content)
        self.last = int(data["last"])
        entries: list[dict[str, Any]] = data["entries"]
        return entries


async def open_transport(endpoint: Endpoint, mode: Mode) -> Transport:
    headers = {"Authorization": f"Bearer {endpoint.api_key}"}
    if mode.transport == "ws":
        ws_url = endpoint.url.replace("http://", "ws://") + "/v1/responses"
        connection = await connect(ws_url, max_size=None, compression="deflate", open_timeout=30,
                                   additional_headers=headers)
        return WebSocketTransport(connection)
    transport = HttpSseTransport(endpoint.url)
    transport.client.headers.update(headers)
    return transport


async def run_conversation(
    workload: workloads.Workload, endpoint: Endpoint, peer: PeerMode, ledger: Ledger, repeat: int
) -> tuple[list[TurnRecord], float]:
    """One whole conversation in one mode; returns its turns and the server's CPU seconds."""
    transport = await open_transport(endpoint, peer.mode)
    conversation = Conversation({**workload.base(), "model": endpoint.model})
    new_items = list(workload.input)
    records = []
    prompt_before = 0
    await ledger.read()
    cpu_before = cpu_seconds(endpoint.pid)
    try:
        for turn in range(workload.model_turns):
            result = await transport.create(conversation.body(peer.mode, new_items))
            output = conversation.record(new_items, result)
            entries = await ledger.read()
            model = sum(float(entry["model_seconds"]) for entry in entries)
            prompt = max((int(entry["prompt_tokens"]) for entry in entries), default=0)
            # A whole context only grows, and the upstream counts the model turns it holds.
            whole = bool(entries) and all(entry["turn"] == turn for entry in entries) and prompt > prompt_before
            prompt_before = prompt
            records.append(TurnRecord(
                peer.name, repeat, turn, result.wait_s, model, result.wait_s - model, len(entries), whole, prompt,
                result.bytes_sent, result.bytes_received,
            ))
            texts = workload.outputs(turn)
            calls = function_calls(output)
            new_items = [tool_output(str(call["call_id"]), texts[i] if i < len(texts) else "ok")
                         for i, call in enumerate(calls)] or [user_message("Continue.")]
    finally:
        await transport.close()
    return records, cpu_seconds(endpoint.pid) - cpu_before


def truncated(workload: workloads.Workload, tool_turns: int) -> workloads.Workload:
    """The first `tool_turns` tool-call turns of a workload, then its final text answer."""
    tool = [turn for turn in workload.turns if turn["tool_calls"]][:tool_turns]
    final = [turn for turn in workload.turns if not turn["tool_calls"]][-1:]
    return dataclasses.replace(workload, turns=[*tool, *final])


@contextlib.contextmanager
def process(command: list[str], log_path: Path, ready_url: str, wait_s: float = 60.0) -> Iterator[int]:
    """A child serving `ready_url` (any answer, a 401 included, means it is serving); yields its pid."""
    with serving_process(command, log_path, ready_url, wait_s=wait_s, any_status=True) as child:
        yield child.pid


async def measure(
    workload: workloads.Workload, endpoints: dict[str, Endpoint], peers: list[PeerMode], upstream_url: str,
    repeats: int, warmup_turns: int,
) -> tuple[list[TurnRecord], dict[str, float], dict[str, str]]:
    ledger = Ledger(upstream_url)
    records: list[TurnRecord] = []
    cpu: dict[str, float] = {peer.name: 0.0 for peer in peers}
    failures: dict[str, str] = {}
    warmup = truncated(workload, warmup_turns)
    for peer in peers:  # first requests pay for imports and connection set-up in every server
        try:
            await run_conversation(warmup, endpoints[peer.server], peer, ledger, -1)
        except (BenchError, OSError, httpx.HTTPError, ValueError) as exc:
            failures[peer.name] = f"{type(exc).__name__}: {exc}"
            print(f"  {peer.name}: FAILED in warm-up: {failures[peer.name][:300]}", file=sys.stderr)
    for repeat in range(repeats):
        live = [peer for peer in peers if peer.name not in failures]
        order = live[repeat % len(live):] + live[: repeat % len(live)] if live else []
        for peer in order:
            try:
                turns, seconds = await run_conversation(workload, endpoints[peer.server], peer, ledger, repeat)
            except (BenchError, OSError, httpx.HTTPError, ValueError) as exc:
                failures[peer.name] = f"{type(exc).__name__}: {exc}"
                print(f"  {peer.name}: FAILED: {failures[peer.name][:300]}", file=sys.stderr)
                continue
            records.extend(turns)
            cpu[peer.name] += seconds
            overhead = statistics.median(turn.overhead_s for turn in turns) * 1000
            print(f"  repeat {repeat + 1}/{repeats} {peer.name:22s} median overhead {overhead:7.2f} ms",
                  file=sys.stderr)
    await ledger.client.aclose()
    return records, cpu, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tether.bench.peer_compare", description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20, help="tool-call turns before the final answer")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tps", type=float, default=1000.0, help="the upstream's output tokens per second")
    parser.add_argument("--ttft-ms", type=float, default=20.0)
    parser.add_argument("--prefill-tps", type=float, default=40_000.0, help="uncached prompt tokens per second")
    parser.add_argument("--workload", default="fix-failing-test", help="a shipped workload or a JSON file")
    parser.add_argument("--modes", default=",".join(peer.name for peer in PEER_MODES))
    parser.add_argument("--no-litellm", action="store_true", help="run tether's modes only")
    parser.add_argument("--dump-upstream", action="store_true",
                        help="keep every request the upstream received in OUT/upstream-requests.jsonl")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: bench-results/peers-TIME)")
    args = parser.parse_args(argv)

    wanted = set(args.modes.split(","))
    peers = [peer for peer in PEER_MODES if peer.name in wanted and not (args.no_litellm and peer.server == "litellm")]
    workload = truncated(workloads.load(args.workload), args.turns)
    profile = ModelProfile(f"{args.tps:g}tps", args.tps, args.ttft_ms, args.prefill_tps)
    out = args.out or Path("bench-results") / time.strftime("peers-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    key = "sk-" + secrets.token_hex(24)
    with tempfile.TemporaryDirectory(prefix="tether-peers-") as tmp, contextlib.ExitStack() as stack:
        directory = Path(tmp)
        script = directory / "script.json"
        script.write_bytes(orjson.dumps(workload.script(profile)))
        up_port, tether_port = free_port(), free_port()
        upstream_url = f"http://127.0.0.1:{up_port}"
        dump = ["--dump", str(out / "upstream-requests.jsonl")] if args.dump_upstream else []
        up_pid = stack.enter_context(process(
            [sys.executable, "-m", "tether.bench.chat_upstream", "--port", str(up_port), "--script", str(script),
             "--model", UPSTREAM_MODEL, *dump], directory / "upstream.log", upstream_url + "/health"))
        tether_pid = stack.enter_context(process(
            [sys.executable, "-m", "tether.cli", "serve", "--backend", "upstream", "--upstream-url",
             upstream_url + "/v1", "--upstream-model", UPSTREAM_MODEL, "--store", "memory", "--api-key", key,
             "--port", str(tether_port)], directory / "tether.log", f"http://127.0.0.1:{tether_port}/health"))
        endpoints = {"tether": Endpoint(f"http://127.0.0.1:{tether_port}", key, UPSTREAM_MODEL, tether_pid)}
        versions = {"tether": _tether_version(), "python": sys.version.split()[0]}
        if any(peer.server == "litellm" for peer in peers):
            litellm = stack.enter_context(
                litellm_proxy(upstream_url + "/v1", UPSTREAM_MODEL, free_port(), directory, key))
            endpoints["litellm"] = Endpoint(litellm.url, key, LITELLM_MODEL, litellm.process.pid)
            versions["litellm"] = litellm.version
        print(f"upstream pid {up_pid}; servers: {', '.join(f'{k} {v.url}' for k, v in endpoints.items())}",
              file=sys.stderr)
        records, cpu, failures = asyncio.run(
            measure(workload, endpoints, peers, upstream_url, args.repeats, warmup_turns=3))
    config = {"workload": workload.name, "tool_turns": args.turns, "turns_per_conversation": workload.model_turns,
              "repeats": args.repeats, "profile": dataclasses.asdict(profile), "versions": versions}
    report(peers, records, cpu, failures, config, out)
    return 0


def _tether_version() -> str:
    from .. import __version__

    return __version__


if __name__ == "__main__":
    raise SystemExit(main())
