"""Medians over repeats for each (model profile, network, workload, mode), the mode ratios, and the tables."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from .modes import Mode
from .rollout import RolloutRecord

FAST_PROFILE, WAN = "1000tps", "wan"


def _figures(record: RolloutRecord) -> dict[str, float]:
    turns = max(1, len(record.turns))
    return {
        "rollout_s": record.rollout_s,
        "overhead_ms_per_turn": sum(t.overhead_ms for t in record.turns) / turns,
        "model_s": sum(t.model_ms for t in record.turns) / 1000,
        "bytes_sent": float(sum(t.bytes_sent for t in record.turns)),
        "payload_bytes": float(sum(t.payload_bytes for t in record.turns)),
        "bytes_received": float(sum(t.bytes_received for t in record.turns)),
        "server_cpu_ms_per_turn": record.server_cpu_ms / turns,
        "server_ms_per_turn": record.server_ms / turns,
        "turns": float(len(record.turns)),
    }


def summarize(records: Sequence[RolloutRecord], modes: Sequence[Mode]) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, str, str], dict[str, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        grouped[(record.profile, record.network, record.workload)][record.mode].append(_figures(record))
    rows = []
    for (profile, network, workload), by_mode in grouped.items():
        medians = {
            mode: {key: statistics.median(f[key] for f in figures) for key in figures[0]} | {"repeats": len(figures)}
            for mode, figures in by_mode.items()
        }
        ratios = {}
        for a, b in (("ws_cached", "http_full"), ("ws_cached", "http_stored")):
            if a in medians and b in medians and medians[b]["rollout_s"] > 0:
                ratios[f"{a}/{b}"] = medians[a]["rollout_s"] / medians[b]["rollout_s"]
        rows.append({"profile": profile, "network": network, "workload": workload, "modes": medians,
                     "rollout_ratios": ratios})
    return rows


def print_summary(rows: Sequence[dict[str, Any]], console: Console) -> None:
    modes = list(dict.fromkeys(mode for row in rows for mode in row["modes"]))
    time_table = Table(title="Rollout time, median s (ratios from the same run)")
    cost_table = Table(title="Per turn: client overhead beyond model time (ms), KB sent by the client, server CPU ms")
    for table in (time_table, cost_table):
        for key in ("profile", "network", "workload"):
            table.add_column(key)
    for mode in modes:
        time_table.add_column(f"{mode}\nrollout s", justify="right")
    time_table.add_column("model s", justify="right")
    time_table.add_column("ws/full", justify="right")
    time_table.add_column("ws/stored", justify="right")
    for mode in modes:
        for figure in ("ovh ms", "KB sent", "CPU ms"):
            cost_table.add_column(f"{mode}\n{figure}", justify="right")
    for row in rows:
        keys = [row["profile"], row["network"], row["workload"]]
        figures = row["modes"]
        ratios = row["rollout_ratios"]
        model_s = next(iter(figures.values()))["model_s"]
        time_table.add_row(*keys, *(f"{figures[m]['rollout_s']:.2f}" for m in modes), f"{model_s:.2f}",
                           *(f"{ratios[k]:.2f}" if k in ratios else "-"
                             for k in ("ws_cached/http_full", "ws_cached/http_stored")))
        cells = []
        for mode in modes:
            f = figures[mode]
            cells += [f"{f['overhead_ms_per_turn']:.1f}", f"{f['bytes_sent'] / 1024:,.0f}",
                      f"{f['server_cpu_ms_per_turn']:.2f}"]
        cost_table.add_row(*keys, *cells)
    console.print(time_table)
    console.print(cost_table)
    for row in rows:
        ratio = row["rollout_ratios"].get("ws_cached/http_full")
        if row["profile"] == FAST_PROFILE and row["network"] == WAN and ratio is not None:
            verdict = "met" if ratio <= 0.5 else "NOT met"
            console.print(f"target (1000 tok/s, WAN, {row['workload']}): WebSocket / HTTP full-context rollout = "
                          f"{ratio:.2f} (target <= 0.50: {verdict})")
