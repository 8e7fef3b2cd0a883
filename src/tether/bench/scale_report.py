"""The scale benchmark's figures: per placement, the share of prompt tokens the engines served from
their cache, TTFT per turn and rollout time; the issue's targets against round-robin; a console table,
a Markdown table, `scale.json` and `scale.png`."""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .report import write_json
from .scale_agents import AgentRun, TurnSample

BASELINE = "round_robin"
#: the issue's targets: after the first turn, >= 90% of prompt tokens from the engines' caches, and
#: later-turn TTFT at most half of round-robin's
CACHE_SHARE_MIN = 0.90
TTFT_RATIO_MAX = 0.5


def _share(samples: Sequence[TurnSample]) -> float | None:
    prompt = sum(s.prompt_tokens for s in samples)
    return sum(s.cached_tokens for s in samples) / prompt if prompt else None


def _p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _reusable(run: AgentRun) -> int:
    """Of the agent's later prompts, the tokens its engine could have had cached: each turn's prompt up to
    what the previous turn sent and generated (a cache that always held the conversation serves them all)."""
    return sum(min(turn.prompt_tokens, before.prompt_tokens + before.output_tokens)
               for before, turn in itertools.pairwise(run.turns))


def _row(name: str, runs: Sequence[AgentRun], wall_s: float) -> dict[str, Any]:
    samples = [s for run in runs for s in run.turns]
    reusable = sum(_reusable(run) for run in runs)
    first = [s for s in samples if s.turn == 0]
    later = [s for s in samples if s.turn > 0]
    by_turn: dict[int, list[TurnSample]] = defaultdict(list)
    for sample in samples:
        by_turn[sample.turn].append(sample)
    later_ttft = [s.ttft_s * 1000 for s in later]
    return {
        "placement": name, "agents": len(runs), "turns": len(samples), "wall_s": wall_s,
        "rollout_s_median": statistics.median(run.rollout_s for run in runs),
        "rollout_s_max": max(run.rollout_s for run in runs),
        "first_cached_share": _share(first), "later_cached_share": _share(later),
        "later_prompt_tokens": sum(s.prompt_tokens for s in later),
        "later_cached_tokens": sum(s.cached_tokens for s in later),
        "later_reusable_tokens": reusable,
        "later_reuse_share": sum(s.cached_tokens for s in later) / reusable if reusable else None,
        "first_ttft_ms": _median([s.ttft_s * 1000 for s in first]),
        "later_uncached_tokens_median": _median([s.prompt_tokens - s.cached_tokens for s in later]),
        "later_ttft_ms": _median(later_ttft), "later_ttft_p90_ms": _p90(later_ttft) if later_ttft else None,
        "tool_calls": sum(s.tool_calls for s in samples),
        "per_turn": [{"turn": turn + 1, "ttft_ms_median": statistics.median(s.ttft_s * 1000 for s in group),
                      "cached_share": _share(group),
                      "prompt_tokens_median": statistics.median(s.prompt_tokens for s in group)}
                     for turn, group in sorted(by_turn.items())],
    }


def summarize(runs: dict[str, list[AgentRun]], walls: dict[str, float]) -> dict[str, Any]:
    rows = [_row(name, group, walls[name]) for name, group in runs.items()]
    return {"rows": rows, "targets": targets(rows)}


def targets(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each affinity placement against the two targets, and round-robin's own figures beside them."""
    base = next((r for r in rows if r["placement"] == BASELINE), None)
    out = []
    for row in rows:
        if row["placement"] == BASELINE:
            continue
        share = row["later_cached_share"]
        ratio = (row["later_ttft_ms"] / base["later_ttft_ms"]
                 if base is not None and row["later_ttft_ms"] is not None and base["later_ttft_ms"] else None)
        out.append({
            "placement": row["placement"],
            "later_cached_share": share, "round_robin_cached_share": base["later_cached_share"] if base else None,
            "cache_share_target": CACHE_SHARE_MIN, "cache_share_met": share is not None and share >= CACHE_SHARE_MIN,
            "later_ttft_ratio": ratio, "ttft_ratio_target": TTFT_RATIO_MAX,
            "ttft_ratio_met": ratio is not None and ratio <= TTFT_RATIO_MAX,
        })
    return out


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


COLUMNS = (
    ("placement", lambda r: r["placement"]), ("agents", lambda r: str(r["agents"])),
    ("turns", lambda r: str(r["turns"])),
    ("cached, turn 1", lambda r: _pct(r["first_cached_share"])),
    ("cached, later turns", lambda r: _pct(r["later_cached_share"])),
    ("of reusable, later", lambda r: _pct(r["later_reuse_share"])),
    ("uncached tokens/turn, later", lambda r: _fmt(r["later_uncached_tokens_median"])),
    ("TTFT ms, turn 1", lambda r: _fmt(r["first_ttft_ms"])),
    ("TTFT ms, later (median)", lambda r: _fmt(r["later_ttft_ms"])),
    ("TTFT ms, later (p90)", lambda r: _fmt(r["later_ttft_p90_ms"])),
    ("rollout s (median)", lambda r: _fmt(r["rollout_s_median"], 1)),
    ("wall s", lambda r: _fmt(r["wall_s"], 1)),
)


def _verdicts(summary: dict[str, Any]) -> list[str]:
    lines = []
    for t in summary["targets"]:
        share = "met" if t["cache_share_met"] else "NOT met"
        ratio = "met" if t["ttft_ratio_met"] else "NOT met"
        lines.append(f"{t['placement']}: cached share after turn 1 {_pct(t['later_cached_share'])} (target >= "
                     f"{_pct(t['cache_share_target'])}: {share}; round-robin {_pct(t['round_robin_cached_share'])}); "
                     f"later-turn TTFT {_fmt(t['later_ttft_ratio'], 2)}x round-robin's (target <= "
                     f"{t['ttft_ratio_target']}: {ratio})")
    return lines


def print_table(summary: dict[str, Any], console: Console) -> None:
    table = Table(title="tether bench scale")
    for title, _ in COLUMNS:
        table.add_column(title, justify="right")
    for row in summary["rows"]:
        table.add_row(*(cell(row) for _, cell in COLUMNS))
    console.print(table)
    turns = Table(title="median TTFT ms per turn (cached share)")
    turns.add_column("placement")
    count = max(len(row["per_turn"]) for row in summary["rows"])
    for turn in range(1, count + 1):
        turns.add_column(f"turn {turn}", justify="right")
    for row in summary["rows"]:
        turns.add_row(row["placement"], *(f"{_fmt(t['ttft_ms_median'])} ({_pct(t['cached_share'])})"
                                          for t in row["per_turn"]))
    console.print(turns)
    for line in _verdicts(summary):
        console.print("  " + line)


def markdown(summary: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(title for title, _ in COLUMNS) + " |",
             "| --- |" + " ---: |" * (len(COLUMNS) - 1)]
    lines += ["| " + " | ".join(cell(row) for _, cell in COLUMNS) + " |" for row in summary["rows"]]
    count = max(len(row["per_turn"]) for row in summary["rows"])
    lines += ["", "| median TTFT ms (cached share) | " + " | ".join(f"turn {t}" for t in range(1, count + 1)) + " |",
              "| --- |" + " ---: |" * count]
    for row in summary["rows"]:
        cells = [f"{_fmt(t['ttft_ms_median'])} ({_pct(t['cached_share'])})" for t in row["per_turn"]]
        lines.append(f"| {row['placement']} | " + " | ".join(cells) + " |")
    lines += ["", *(f"- {line}" for line in _verdicts(summary))]
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for row in rows:
        turns = [t["turn"] for t in row["per_turn"]]
        axes[0].plot(turns, [t["ttft_ms_median"] for t in row["per_turn"]], "o-", label=row["placement"])
        axes[1].plot(turns, [100 * (t["cached_share"] or 0) for t in row["per_turn"]], "o-", label=row["placement"])
    axes[0].set_ylabel("TTFT, ms (median over agents)")
    axes[1].set_ylabel("prompt tokens served from the engines' cache, %")
    axes[1].axhline(100 * CACHE_SHARE_MIN, color="black", linestyle="dashed", linewidth=1, label="target (90%)")
    count = max(len(row["per_turn"]) for row in rows)
    for ax in axes[:2]:
        ax.set_xticks(range(1, count + 1))
        ax.set_xlabel("turn")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    names = [row["placement"] for row in rows]
    axes[2].bar(names, [row["rollout_s_median"] for row in rows], color=["C0", "C1", "C2"][: len(rows)])
    axes[2].set_ylabel("agent rollout time, s (median)")
    axes[2].grid(alpha=0.3, axis="y")
    fig.suptitle("tether bench scale: agents on two llama-server replicas, placement against placement")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(result: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "scale.json", out / "scale.md", out / "scale.png"]
    write_json(result, paths[0])
    paths[1].write_text(markdown(result["summary"]))
    plot(result["summary"], paths[2])
    return paths
