"""Time to first token on the embedded llama.cpp engine, against context length.

Starts `tether serve --backend llamacpp` in a subprocess and runs agents whose every turn adds a block
of tool-output-like text (the context grows) and asks for a short answer. Three ways to send turn N:

  ws    a WebSocket lane: only the new input, `previous_response_id`; the lane's KV state is reused
  http  HTTP (SSE) with `previous_response_id`: a fresh session, served by the engine's prefix cache
  cold  HTTP with the whole conversation and a unique `instructions` string: nothing can be reused

each with 1 and with 4 agents at once (turns queue on the one engine). Prints a table, writes JSON
and a PNG plot: `python -m tether.bench.llamacpp_ttft [--turns 8] [--out DIR]`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from openai import OpenAI

from ..processes import free_port, serving_process

MODES = ("ws", "http", "cold")
WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega river stone cloud lamp".split()


@dataclass(frozen=True, slots=True)
class Sample:
    mode: str
    agents: int
    agent: int
    turn: int
    input_tokens: int
    cached_tokens: int
    ttft_s: float
    total_s: float


@contextlib.contextmanager
def llamacpp_server(extra: list[str]) -> Iterator[tuple[str, float]]:
    """The server's URL and the seconds from spawn to a healthy answer (process start + model load)."""
    with tempfile.TemporaryDirectory(prefix="tether-ttft-") as tmp:
        port = free_port()
        log_path = Path(tmp) / "server.log"
        started = time.perf_counter()
        command = [sys.executable, "-m", "tether.cli", "serve", "--backend", "llamacpp", "--store", "memory",
                   "--port", str(port), *extra]
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "TETHER_DATA_DIR": tmp}
        with serving_process(command, log_path, url + "/health", wait_s=120, env=env):
            yield url, time.perf_counter() - started


def tool_output(mode: str, agent: int, turn: int, words: int) -> str:
    """Deterministic filler that looks like a tool's output; different per mode, agent and turn, so that
    one mode's conversations never hit the prefix cache that another mode's left behind."""
    lines = [f"Run {mode}-{agent}."]
    for i in range(words // 8):
        picked = [WORDS[(agent * 7 + turn * 3 + i + k * k) % len(WORDS)] for k in range(6)]
        lines.append(f"{turn}.{i}: " + " ".join(picked))
    return "Tool output:\n" + "\n".join(lines) + "\nSummarize it in one sentence."


def _stream(events: Any, started: float) -> tuple[float, dict[str, Any]]:
    first = None
    for event in events:
        kind = event.type
        if first is None and kind in ("response.output_text.delta", "response.function_call_arguments.delta"):
            first = time.perf_counter() - started
        if kind in ("response.completed", "response.incomplete", "response.failed", "error"):
            data = event.to_dict()
            if kind in ("response.failed", "error"):
                raise RuntimeError(f"turn failed: {data}")
            return (first if first is not None else time.perf_counter() - started), data["response"]
    raise RuntimeError("the stream ended without a terminal event")


def run_agent(url: str, mode: str, agents: int, agent: int, turns: int, words: int, max_tokens: int,
              samples: list[Sample], lock: threading.Lock) -> None:
    client = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=600)
    common: dict[str, Any] = {"model": "bench", "max_output_tokens": max_tokens, "temperature": 0}
    history: list[Any] = []
    previous: str | None = None
    with contextlib.ExitStack() as stack:
        conn = stack.enter_context(client.responses.connect()) if mode == "ws" else None
        for turn in range(1, turns + 1):
            message: Any = {"role": "user", "content": tool_output(mode, agent, turn, words)}
            started = time.perf_counter()
            if conn is not None:
                conn.response.create(input=[message], previous_response_id=previous, store=False, **common)
                ttft, response = _stream(conn, started)
            elif mode == "http":
                events = client.responses.create(input=[message], previous_response_id=previous, stream=True,
                                                 **common)
                ttft, response = _stream(events, started)
            else:
                history.append(message)
                events = client.responses.create(input=history, instructions=f"Session {uuid.uuid4()}.",
                                                 stream=True, store=False, **common)
                ttft, response = _stream(events, started)
                text = "".join(part.get("text", "") for item in response["output"] if item["type"] == "message"
                               for part in item["content"])
                history.append({"role": "assistant", "content": text})
            total = time.perf_counter() - started
            previous = response["id"]
            usage = response["usage"]
            sample = Sample(mode, agents, agent, turn, usage["input_tokens"],
                            usage["input_tokens_details"]["cached_tokens"], ttft, total)
            with lock:
                samples.append(sample)


def run_mode(url: str, mode: str, agents: int, turns: int, words: int, max_tokens: int) -> list[Sample]:
    samples: list[Sample] = []
    lock = threading.Lock()
    threads = [threading.Thread(target=run_agent, args=(url, mode, agents, i, turns, words, max_tokens, samples,
                                                          lock)) for i in range(agents)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(samples) != agents * turns:
        raise RuntimeError(f"{mode} x{agents}: {len(samples)} of {agents * turns} turns finished")
    return samples


def model_load_seconds(model: str | None, ctx: int, threads: int) -> float:
    from ..backends.llamacpp.loader import ContextShape, load_model
    from ..backends.llamacpp.model_file import resolve_model_path

    loaded = load_model(resolve_model_path(model), ContextShape(1, ctx, threads))
    loaded.close()
    return loaded.load_seconds


def first_answer(url: str) -> float:
    client = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    started = time.perf_counter()
    ttft, _ = _stream(client.responses.create(model="bench", input="Say hello.", stream=True, max_output_tokens=16,
                                              temperature=0, store=False), started)
    return ttft


def table(samples: list[Sample]) -> str:
    groups: dict[tuple[str, int, int], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.mode, s.agents, s.turn), []).append(s)
    rows = ["mode  agents turn  ctx_tokens  cached  ttft_ms(median)  ttft_ms(max)"]
    for (mode, agents, turn), group in sorted(groups.items(), key=lambda kv: (kv[0][1], MODES.index(kv[0][0]),
                                                                            kv[0][2])):
        ctx = statistics.median(s.input_tokens for s in group)
        cached = statistics.median(s.cached_tokens for s in group)
        ttfts = [s.ttft_s * 1000 for s in group]
        rows.append(f"{mode:<5} {agents:>6} {turn:>4} {ctx:>11.0f} {cached:>7.0f} {statistics.median(ttfts):>16.0f}"
                    f" {max(ttfts):>13.0f}")
    return "\n".join(rows)


def plot(samples: list[Sample], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sorted({s.agents for s in samples})
    fig, axes = plt.subplots(1, len(counts), figsize=(6 * len(counts), 4.5), squeeze=False)
    for ax, agents in zip(axes[0], counts, strict=True):
        for mode in MODES:
            points = sorted((s.input_tokens, s.ttft_s * 1000) for s in samples if s.mode == mode and s.agents == agents)
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=mode, markersize=3)
        ax.set_title(f"{agents} agent{'s' if agents > 1 else ''} at once")
        ax.set_xlabel("context (prompt tokens)")
        ax.set_ylabel("time to first token (ms)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("tether embedded llama.cpp: TTFT against context length")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tether.bench.llamacpp_ttft", description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--words", type=int, default=120, help="filler words added per turn (~2.5 tokens each)")
    parser.add_argument("--max-output-tokens", type=int, default=16)
    parser.add_argument("--agents", default="1,4", help="comma-separated agent counts")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=8192)
    parser.add_argument("--model", default=None, help="a GGUF file (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--out", default="bench-results/llamacpp_ttft")
    args = parser.parse_args(argv)
    extra = ["--threads", str(args.threads), "--ctx", str(args.ctx)] + (["--model", args.model] if args.model else [])
    samples: list[Sample] = []
    load_s = model_load_seconds(args.model, args.ctx, args.threads)
    print(f"model load (in process): {load_s:.3f}s")
    with llamacpp_server(extra) as (url, startup_s):
        first_s = first_answer(url)
        print(f"server up in {startup_s:.2f}s (process start + model load); first answer TTFT {first_s * 1000:.0f} ms")
        for agents in (int(n) for n in args.agents.split(",")):
            for mode in args.modes.split(","):
                started = time.perf_counter()
                samples += run_mode(url, mode, agents, args.turns, args.words, args.max_output_tokens)
                print(f"  {mode} x{agents}: {time.perf_counter() - started:.1f}s", file=sys.stderr)
    print(table(samples))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"settings": vars(args), "server_startup_s": startup_s, "model_load_s": load_s,
              "first_answer_ttft_s": first_s, "samples": [asdict(s) for s in samples]}
    (out / "results.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    plot(samples, out / "ttft.png")
    print(f"wrote {out / 'results.json'} and {out / 'ttft.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
