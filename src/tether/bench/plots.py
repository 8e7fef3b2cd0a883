"""Plots: per-turn latency (or overhead) against turn number per mode; rollout time per mode and profile."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .modes import Mode
from .rollout import RolloutRecord


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish_plot(fig: Any, ax: Any, path: Path, *, xlabel: str, ylabel: str, title: str) -> None:
    """Label, grid and legend one axes the way every tether plot has them, then write the PNG."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)


def plot_turns(records: Sequence[RolloutRecord], modes: Sequence[Mode], path: Path, field: str) -> None:
    """One panel per (profile, network), on the workload with the most turns; median over repeats per turn."""
    plt = _pyplot()
    longest = max(records, key=lambda r: len(r.turns)).workload
    panels = sorted({(r.profile, r.network) for r in records})
    series: dict[tuple[str, str, str], list[list[float]]] = defaultdict(list)
    for record in records:
        if record.workload == longest:
            series[(record.profile, record.network, record.mode)].append([getattr(t, field) for t in record.turns])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (profile, network) in zip(axes[0], panels, strict=True):
        for mode in modes:
            runs = series.get((profile, network, mode.name))
            if not runs:
                continue
            n = min(len(run) for run in runs)
            ax.plot(range(1, n + 1), [statistics.median(run[i] for run in runs) for i in range(n)], label=mode.name)
        ax.set_title(f"{longest}: {profile}, {network}", fontsize=9)
        ax.set_xlabel("turn")
        ax.set_ylabel("client wait, ms" if field == "wait_ms" else "wait beyond model time, ms")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_rollouts(summary: Sequence[dict[str, Any]], modes: Sequence[Mode], path: Path) -> None:
    """Median rollout time summed over workloads, grouped by (profile, network), one bar per mode."""
    plt = _pyplot()
    groups = sorted({(row["profile"], row["network"]) for row in summary})
    totals = {(g, m.name): sum(row["modes"][m.name]["rollout_s"] for row in summary
                               if (row["profile"], row["network"]) == g and m.name in row["modes"])
              for g in groups for m in modes}
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * len(groups)), 4))
    width = 0.8 / len(modes)
    for index, mode in enumerate(modes):
        xs = [g + index * width for g in range(len(groups))]
        ax.bar(xs, [totals[(group, mode.name)] for group in groups], width, label=mode.label)
    floors = [sum(row["floor_s"] for row in summary if (row["profile"], row["network"]) == group) for group in groups]
    ax.hlines(floors, [g - width / 2 for g in range(len(groups))], [g + 0.8 - width / 2 for g in range(len(groups))],
              colors="black", linestyles="dashed", label="floor: model time + one RTT a turn")
    ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], [f"{p}\n{n}" for p, n in groups])
    ax.set_ylabel("rollout time, s (median, summed over workloads)")
    ax.set_title("tether bench: rollout time per mode")
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
