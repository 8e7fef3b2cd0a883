"""The peer comparison's report: a table on stdout, `peers.json`, and `peers.png`."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from .peer_compare import PeerMode, TurnRecord

#: (tether mode, LiteLLM mode) pairs compared against the target: tether's overhead at most half of LiteLLM's
PAIRS = (("tether_ws", "litellm_ws"), ("tether_http", "litellm_http_full"), ("tether_http_full", "litellm_http_full"))
TARGET_RATIO = 0.5


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(peer: PeerMode, records: list[TurnRecord], cpu_s: float) -> dict[str, Any]:
    mine = [record for record in records if record.mode == peer.name]
    if not mine:
        return {"mode": peer.name, "label": peer.mode.label, "turns": 0}
    overhead = [record.overhead_s * 1000 for record in mine]
    last = max(record.turn for record in mine)
    return {
        "mode": peer.name,
        "label": peer.mode.label,
        "turns": len(mine),
        "wait_ms_median": statistics.median(record.wait_s * 1000 for record in mine),
        "model_ms_median": statistics.median(record.model_s * 1000 for record in mine),
        "overhead_ms_median": statistics.median(overhead),
        "overhead_ms_p25": _quantile(overhead, 0.25),
        "overhead_ms_p90": _quantile(overhead, 0.9),
        "overhead_ms_mean": statistics.fmean(overhead),
        "server_cpu_ms_per_turn": cpu_s * 1000 / len(mine),
        "sent_bytes_median": statistics.median(record.bytes_sent for record in mine),
        "context_ok": sum(record.context_ok for record in mine) / len(mine),
        "last_turn_prompt_tokens": statistics.median(r.prompt_tokens for r in mine if r.turn == last),
        "upstream_calls_per_turn": sum(record.upstream_calls for record in mine) / len(mine),
    }


def ratios(summaries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for ours, theirs in PAIRS:
        a, b = summaries.get(ours, {}), summaries.get(theirs, {})
        if a.get("turns") and b.get("turns"):
            ratio = a["overhead_ms_median"] / b["overhead_ms_median"] if b["overhead_ms_median"] > 0 else None
            out.append({"tether": ours, "litellm": theirs, "overhead_ratio": ratio,
                        "meets_target": ratio is not None and ratio <= TARGET_RATIO})
    return out


def table(summaries: list[dict[str, Any]], pairs: list[dict[str, Any]], failures: dict[str, str]) -> str:
    head = (f"{'mode':22s} {'turns':>5s} {'wait':>8s} {'model':>8s} {'overhead':>9s} {'p90':>8s} "
            f"{'cpu/turn':>9s} {'sent':>8s} {'ctx ok':>6s} {'last prompt':>11s}")
    lines = [head, "-" * len(head)]
    for s in summaries:
        if not s["turns"]:
            lines.append(f"{s['mode']:22s}  FAILED: {failures.get(s['mode'], 'no turns')[:200]}")
            continue
        lines.append(
            f"{s['mode']:22s} {s['turns']:5d} {s['wait_ms_median']:8.2f} {s['model_ms_median']:8.2f} "
            f"{s['overhead_ms_median']:9.2f} {s['overhead_ms_p90']:8.2f} {s['server_cpu_ms_per_turn']:9.2f} "
            f"{s['sent_bytes_median'] / 1024:7.1f}K {s['context_ok'] * 100:5.0f}% {s['last_turn_prompt_tokens']:11.0f}")
    lines.append("(ms, medians per turn; overhead = client wait - the upstream's own time; cpu = the proxy process)")
    for pair in pairs:
        ratio = pair["overhead_ratio"]
        verdict = "meets" if pair["meets_target"] else "misses"
        shown = f"{ratio:.2f}" if ratio is not None else "n/a"
        lines.append(f"overhead {pair['tether']} / {pair['litellm']} = {shown}  "
                     f"({verdict} the <= {TARGET_RATIO} target)")
    return "\n".join(lines)


def plot(peers: Sequence[PeerMode], records: list[TurnRecord], summaries: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ran = [s for s in summaries if s["turns"]]
    fig, (bars, lines) = plt.subplots(1, 2, figsize=(13, 5))
    colors = ["#1f77b4" if s["mode"].startswith("tether") else "#d62728" for s in ran]
    medians = [s["overhead_ms_median"] for s in ran]
    errors = [[m - s["overhead_ms_p25"] for m, s in zip(medians, ran, strict=True)],
              [s["overhead_ms_p90"] - m for m, s in zip(medians, ran, strict=True)]]
    bars.barh([s["mode"] for s in ran], medians, xerr=errors, color=colors)
    bars.invert_yaxis()
    bars.set_xlabel("per-turn overhead, ms (median; whiskers p25-p90)")
    bars.set_title("Proxy overhead per turn")
    for peer in peers:
        mine = [record for record in records if record.mode == peer.name]
        if not mine:
            continue
        turns = sorted({record.turn for record in mine})
        values = [statistics.median(r.overhead_s * 1000 for r in mine if r.turn == turn) for turn in turns]
        style = "-" if peer.server == "tether" else "--"
        lines.plot(turns, values, style, marker=".", label=peer.name)
    lines.set_xlabel("turn")
    lines.set_ylabel("overhead, ms (median over repeats)")
    lines.set_title("Overhead as the conversation grows")
    lines.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(
    peers: Sequence[PeerMode], records: list[TurnRecord], cpu: dict[str, float], failures: dict[str, str],
    config: dict[str, Any], out: Path,
) -> None:
    summaries = [summarize(peer, records, cpu.get(peer.name, 0.0)) for peer in peers]
    pairs = ratios({s["mode"]: s for s in summaries})
    print(f"workload {config['workload']}: {config['turns_per_conversation']} turns x {config['repeats']} repeats; "
          f"versions {config['versions']}")
    print(table(summaries, pairs, failures))
    document = {"config": config, "summary": summaries, "ratios": pairs, "failures": failures,
                "turns": [dataclasses.asdict(record) for record in records]}
    (out / "peers.json").write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    plot(peers, records, summaries, out / "peers.png")
    print(f"wrote {out / 'peers.json'} and {out / 'peers.png'}")
