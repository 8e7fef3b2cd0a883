"""Medians over repeats for each (model profile, network, workload, mode), the mode ratios, the floor,
and the tables.

The floor of a rollout is what no API can beat: the model's own time plus one network round trip per
turn. Each mode's rollout is shown beside it, so the distance to the limit is visible.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from .modes import Mode
from .profiles import NetworkProfile
from .rollout import RolloutRecord

#: (name, numerator mode, denominator mode or "floor") of the ratios reported for every row
RATIOS = (
    ("ws/full", "ws_cached", "http_full"),
    ("ws/stored", "ws_cached", "http_stored"),
    ("ws/plain", "ws_cached", "ws_plain"),
    ("ws/floor", "ws_cached", "floor"),
)
#: issue 11's targets: (profile, networks, ratio name, bound)
TARGETS = (
    ("instant", ("loopback",), "ws/full", 0.25),
    ("instant", ("loopback",), "ws/plain", 1.10),
    ("1000tps", ("wan", "wan50"), "ws/floor", 1.10),
    ("1000tps", ("wan", "wan50"), "ws/full", 0.70),
)


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


def summarize(
    records: Sequence[RolloutRecord], modes: Sequence[Mode], networks: Mapping[str, NetworkProfile] | None = None
) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, str, str], dict[str, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        grouped[(record.profile, record.network, record.workload)][record.mode].append(_figures(record))
    rows = []
    for (profile, network, workload), by_mode in grouped.items():
        medians = {
            mode: {key: statistics.median(f[key] for f in figures) for key in figures[0]} | {"repeats": len(figures)}
            for mode, figures in by_mode.items()
        }
        rtt_s = networks[network].rtt_ms / 1000 if networks and network in networks else 0.0
        # The least model time any mode saw (a mode that loses the engine's cache pays prefill again).
        first = min(medians.values(), key=lambda m: m["model_s"])
        floor_s = first["model_s"] + first["turns"] * rtt_s
        ratios = {}
        for name, a, b in RATIOS:
            if b == "floor" and rtt_s == 0:
                continue  # without a network there is no floor to speak of (an instant model's is zero)
            denominator = floor_s if b == "floor" else medians[b]["rollout_s"] if b in medians else 0.0
            if a in medians and denominator > 0:
                ratios[name] = medians[a]["rollout_s"] / denominator
        rows.append({"profile": profile, "network": network, "workload": workload, "modes": medians,
                     "floor_s": floor_s, "rollout_ratios": ratios,
                     "overhead_ms_per_turn": {m: f["overhead_ms_per_turn"] for m, f in medians.items()}})
    return rows


def target_verdicts(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each of issue 11's targets that this run measured: the ratio, its bound, met or not."""
    verdicts = []
    for row in rows:
        for profile, networks, name, bound in TARGETS:
            ratio = row["rollout_ratios"].get(name)
            if row["profile"] == profile and row["network"] in networks and ratio is not None:
                verdicts.append({"profile": profile, "network": row["network"], "workload": row["workload"],
                                 "ratio": name, "value": ratio, "bound": bound, "met": ratio <= bound})
    return verdicts


def print_summary(rows: Sequence[dict[str, Any]], console: Console) -> None:
    modes = list(dict.fromkeys(mode for row in rows for mode in row["modes"]))
    time_table = Table(title="Rollout time, median s (ratios from the same run; floor: model time + one RTT a turn)")
    cost_table = Table(title="What each mode costs: the client's wait beyond model time, the client's wire bytes "
                             "per rollout, the server's CPU")
    for table in (time_table, cost_table):
        for key in ("profile", "network", "workload"):
            table.add_column(key)
    for mode in modes:
        time_table.add_column(f"{mode}\nrollout s", justify="right")
    time_table.add_column("floor s", justify="right")
    for name, _, _ in RATIOS:
        time_table.add_column(name, justify="right")
    cost_table.add_column("mode")
    for figure in ("overhead ms / turn", "KB sent", "KB received", "server CPU ms / turn"):
        cost_table.add_column(figure, justify="right")
    for row in rows:
        keys = [row["profile"], row["network"], row["workload"]]
        figures = row["modes"]
        ratios = row["rollout_ratios"]
        time_table.add_row(*keys, *(f"{figures[m]['rollout_s']:.2f}" if m in figures else "-" for m in modes),
                           f"{row['floor_s']:.2f}",
                           *(f"{ratios[name]:.2f}" if name in ratios else "-" for name, _, _ in RATIOS))
        for mode in modes:
            if mode in figures:
                f = figures[mode]
                cost_table.add_row(*keys, mode, f"{f['overhead_ms_per_turn']:.2f}", f"{f['bytes_sent'] / 1024:,.0f}",
                                   f"{f['bytes_received'] / 1024:,.0f}", f"{f['server_cpu_ms_per_turn']:.2f}")
        cost_table.add_section()
    console.print(time_table)
    console.print(cost_table)
    for verdict in target_verdicts(rows):
        console.print(f"target ({verdict['profile']}, {verdict['network']}, {verdict['workload']}): "
                      f"{verdict['ratio']} = {verdict['value']:.2f} (<= {verdict['bound']:.2f}: "
                      f"{'met' if verdict['met'] else 'NOT met'})")
