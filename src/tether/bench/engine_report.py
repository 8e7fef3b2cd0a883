"""The engine benchmark's figures: per (engine, agents, context) summaries, tether against llama-server
with the issue's targets, a console table, and the JSON, Markdown and PNG files."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .engine_clients import TurnSample
from .report import write_json

# The targets, for 4 and 8 agents at 4k and 8k tokens: tether against llama-server.
TARGET_AGENTS = (4, 8)
TARGET_CONTEXTS = (4096, 8192)
TTFT_RATIO_MAX = 0.8
GEN_RATIO_MIN = 1.0
PREFILL_RATIO_MIN = 1.0


def _p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def _row(engine: str, agents: int, context: int, group: list[TurnSample], wall: float,
         health_s: list[float], cpu_s: float | None, floor: dict[str, float] | None) -> dict[str, Any]:
    first = [s for s in group if s.turn == 0]
    later = [s for s in group if s.turn > 0]
    last_turn = max(s.turn for s in group)
    evaluated_first = sum(s.input_tokens - s.cached_tokens for s in first)
    first_phase = max(s.started_s + s.ttft_s for s in first)
    decode = [(s.output_tokens - 1) / (s.total_s - s.ttft_s) for s in group
              if s.output_tokens > 1 and s.total_s > s.ttft_s]
    inputs = sum(s.input_tokens for s in group)
    row: dict[str, Any] = {
        "engine": engine, "agents": agents, "context": context, "turns": len(group), "wall_s": wall,
        "server_cpu_s": cpu_s,
        "tokens_first_to_last": f"{round(statistics.median(s.input_tokens for s in first)):,}-"
                                f"{round(statistics.median(s.input_tokens for s in group if s.turn == last_turn)):,}",
        "first_ttft_ms": 1000 * statistics.median(s.ttft_s for s in first),
        "later_ttft_ms": 1000 * statistics.median(s.ttft_s for s in later) if later else None,
        "later_ttft_p90_ms": 1000 * _p90([s.ttft_s for s in later]) if later else None,
        "gen_tok_s": sum(s.output_tokens for s in group) / wall,
        "prefill_tok_s": evaluated_first / first_phase if first_phase > 0 else None,
        "decode_tok_s_per_turn": statistics.median(decode) if decode else None,
        "cached_share": sum(s.cached_tokens for s in group) / inputs if inputs else 0.0,
        "later_cached_share": (sum(s.cached_tokens for s in later) / max(1, sum(s.input_tokens for s in later))
                               if later else None),
        "later_new_tokens": statistics.median(s.input_tokens - s.cached_tokens for s in later) if later else None,
        "reconnects": sum(s.reconnects for s in group),
        "health_p50_ms": 1000 * statistics.median(health_s) if health_s else None,
        "health_p99_ms": 1000 * sorted(health_s)[min(len(health_s) - 1, int(0.99 * len(health_s)))]
        if health_s else None,
    }
    # the kernel alone: a lone continuation's new tokens on a resident KV, plus one decode step
    row["floor_ms"] = floor["floor_ms"] if floor else None
    row["later_ttft_vs_floor"] = _ratio(row["later_ttft_ms"], row["floor_ms"])
    if agents == 1 and later and row["prefill_tok_s"] and row["decode_tok_s_per_turn"]:
        # a continuation's TTFT, modelled: its new tokens at the measured prefill rate, plus one decode step
        model_s = row["later_new_tokens"] / row["prefill_tok_s"] + 1 / row["decode_tok_s_per_turn"]
        row["later_ttft_model_ms"] = 1000 * model_s
        row["later_ttft_vs_model"] = row["later_ttft_ms"] / row["later_ttft_model_ms"]
    return row


def summarize(samples: Sequence[TurnSample], walls: dict[str, float], probes: dict[str, list[float]],
              cpu: dict[str, float], new_tokens: int,
              floors: dict[int, dict[str, float]] | None = None) -> dict[str, Any]:
    """Rows per (engine, agents, context); `floors`: the kernel's floor by context (`engine_floor`)."""
    groups: dict[tuple[str, int, int], list[TurnSample]] = defaultdict(list)
    for sample in samples:
        groups[(sample.engine, sample.agents, sample.context)].append(sample)
    rows = [_row(engine, agents, context, group, walls[f"{engine}/{agents}/{context}"],
                 probes.get(f"{engine}/{agents}/{context}", []), cpu.get(f"{engine}/{agents}/{context}"),
                 (floors or {}).get(context))
            for (engine, agents, context), group in sorted(groups.items())]
    return {"rows": rows, "comparison": _compare(rows), "new_tokens": new_tokens}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _compare(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_key = {(r["engine"], r["agents"], r["context"]): r for r in rows}
    out = []
    for (engine, agents, context), ours in sorted(by_key.items()):
        peer = by_key.get(("llama-server", agents, context))
        if engine != "tether" or peer is None:
            continue
        entry: dict[str, Any] = {
            "agents": agents, "context": context,
            "later_ttft_ratio": _ratio(ours["later_ttft_ms"], peer["later_ttft_ms"]),
            "gen_ratio": _ratio(ours["gen_tok_s"], peer["gen_tok_s"]),
            "prefill_ratio": _ratio(ours["prefill_tok_s"], peer["prefill_tok_s"]),
            "server_cpu_ratio": _ratio(ours["server_cpu_s"], peer["server_cpu_s"]),
        }
        if agents in TARGET_AGENTS and context in TARGET_CONTEXTS:
            ttft, gen, prefill = entry["later_ttft_ratio"], entry["gen_ratio"], entry["prefill_ratio"]
            entry["targets_met"] = bool(ttft is not None and ttft <= TTFT_RATIO_MAX and gen is not None
                                        and gen >= GEN_RATIO_MIN and prefill is not None
                                        and prefill >= PREFILL_RATIO_MIN)
        out.append(entry)
    return out


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


COLUMNS = (
    ("engine", "engine", None), ("agents", "agents", None), ("context", "context", None),
    ("prompt tokens, first-last turn", "tokens_first_to_last", None),
    ("first-turn TTFT ms", "first_ttft_ms", 0), ("later TTFT ms (median)", "later_ttft_ms", 0),
    ("later TTFT ms (p90)", "later_ttft_p90_ms", 0), ("kernel floor ms", "floor_ms", 0),
    ("later TTFT / floor", "later_ttft_vs_floor", 2), ("gen tok/s", "gen_tok_s", 1),
    ("first-turn prefill tok/s", "prefill_tok_s", 0), ("cached share", "cached_share", 2),
    ("server CPU s", "server_cpu_s", 1), ("/health p99 ms", "health_p99_ms", 0),
)


def _cells(row: dict[str, Any]) -> list[str]:
    return [str(row[key]) if digits is None else _fmt(row[key], digits) for _, key, digits in COLUMNS]


def print_table(summary: dict[str, Any], engines: Sequence[str], console: Console) -> None:
    table = Table(title="tether bench engine")
    for title, _, _ in COLUMNS:
        table.add_column(title, justify="right")
    for row in sorted(summary["rows"], key=lambda r: (r["context"], r["agents"], engines.index(r["engine"]))):
        table.add_row(*_cells(row))
    console.print(table)
    for entry in summary["comparison"]:
        verdict = {True: "targets met", False: "targets NOT met"}.get(entry.get("targets_met"), "")
        console.print(f"  tether / llama-server, {entry['agents']} x {entry['context']}: later TTFT "
                      f"{_fmt(entry['later_ttft_ratio'], 2)}x, gen tok/s {_fmt(entry['gen_ratio'], 2)}x, "
                      f"prefill {_fmt(entry['prefill_ratio'], 2)}x, "
                      f"server CPU {_fmt(entry['server_cpu_ratio'], 2)}x {verdict}")


def markdown(summary: dict[str, Any], engines: Sequence[str]) -> str:
    lines = ["| " + " | ".join(title for title, _, _ in COLUMNS) + " |",
             "| " + " | ".join("---" if i < 1 else "---:" for i in range(len(COLUMNS))) + " |"]
    for row in sorted(summary["rows"], key=lambda r: (r["context"], r["agents"], engines.index(r["engine"]))):
        lines.append("| " + " | ".join(_cells(row)) + " |")
    if summary["comparison"]:
        lines += ["", "| agents x context | later TTFT ratio | gen tok/s ratio | prefill ratio | server CPU ratio "
                      "| targets |",
                  "| --- | ---: | ---: | ---: | ---: | --- |"]
        for entry in summary["comparison"]:
            met = entry.get("targets_met")
            lines.append(f"| {entry['agents']} x {entry['context']} | {_fmt(entry['later_ttft_ratio'], 2)} | "
                         f"{_fmt(entry['gen_ratio'], 2)} | {_fmt(entry['prefill_ratio'], 2)} | "
                         f"{_fmt(entry['server_cpu_ratio'], 2)} | "
                         f"{'-' if met is None else ('met' if met else 'not met')} |")
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], engines: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    contexts = sorted({r["context"] for r in rows})
    fig, axes = plt.subplots(2, len(contexts), figsize=(4.5 * len(contexts), 7), squeeze=False)
    for column, context in enumerate(contexts):
        for engine in engines:
            points = sorted((r["agents"], r) for r in rows if r["engine"] == engine and r["context"] == context)
            xs = [agents for agents, _ in points]
            axes[0][column].plot(xs, [r["later_ttft_ms"] or 0 for _, r in points], "o-", label=engine)
            axes[1][column].plot(xs, [r["gen_tok_s"] for _, r in points], "o-", label=engine)
        axes[0][column].set_title(f"~{context} tokens of context")
        axes[0][column].set_ylabel("later-turn TTFT, ms (median)")
        axes[1][column].set_ylabel("generated tokens/s, all agents")
        for row in (0, 1):
            axes[row][column].set_xlabel("concurrent agents")
            axes[row][column].set_xticks(sorted({r["agents"] for r in rows}))
            axes[row][column].grid(alpha=0.3)
            axes[row][column].legend(fontsize=8)
    fig.suptitle("embedded engine vs llama-server\n(same GGUF, threads, slots)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(result: dict[str, Any], summary: dict[str, Any], engines: Sequence[str], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "engine.json", out / "engine.md", out / "engine.png"]
    write_json(result, paths[0])
    paths[1].write_text(markdown(summary, engines))
    plot(summary, engines, paths[2])
    return paths
