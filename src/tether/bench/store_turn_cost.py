"""Server time per `store: true` HTTP turn, store against store in one run (issue 13's target: PostgreSQL
within 2 ms of SQLite on loopback).

Each round gives every store a fresh tether server (the stores' order rotated every round) and runs
`turn_cost`'s measurement on it: one conversation per mode grown to each length, then timed turns. The
report pools every round's timed turns of the `store: true` mode (`http_stored`: the parent recalled or
read from the store, the response committed before its terminal event) per store and length, and shows
each store's median and its distance from SQLite's; the cached WebSocket turn, which never touches the
store, is shown beside it as the control.

    python -m tether.bench.store_turn_cost [--stores sqlite,embedded-postgres,embedded-postgres-async]
        [--rounds 3] [--lengths 1000,10000,100000] [--repeats 7] [--out DIR]

`embedded-postgres` is a throwaway PostgreSQL on TCP loopback with its default, durable commit;
`embedded-postgres-async` the same server with `synchronous_commit=off`, the durability of tether's
SQLite (both survive a crash of tether, not of the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
from pathlib import Path
from typing import Any

from rich.table import Table

from .plots import finish_plot
from .report import machine_note, wide_console, write_json
from .server import tether_server
from .store_ops import ASYNC_COMMIT
from .turn_cost import CHARS_PER_TOKEN, MAX_OUTPUT_CHARS, fast_script, measure

STORED_MODE = "http_stored"
CONTROL_MODE = "ws_cached"


def pooled(rounds: list[dict[str, Any]], mode: str, index: int) -> list[float]:
    return [ms for result in rounds for ms in result["modes"][mode]["points"][index]["server_ms"]]


def summarize(runs: dict[str, list[dict[str, Any]]], lengths: list[int]) -> dict[str, Any]:
    stores: dict[str, Any] = {}
    for name, rounds in runs.items():
        stores[name] = {
            "stored_ms": [statistics.median(pooled(rounds, STORED_MODE, i)) for i in range(len(lengths))],
            "control_ms": [statistics.median(pooled(rounds, CONTROL_MODE, i)) for i in range(len(lengths))],
            "rounds": rounds,
        }
    baseline = stores.get("sqlite")
    for point in stores.values():
        point["above_sqlite_ms"] = (
            [mine - theirs for mine, theirs in zip(point["stored_ms"], baseline["stored_ms"], strict=True)]
            if baseline is not None else None
        )
    return {"benchmark": "store_turn_cost", "machine": machine_note(), "lengths": lengths, "stores": stores}


def print_table(result: dict[str, Any]) -> None:
    table = Table(title="store:true HTTP turn, server ms (median of every round's timed turns)")
    for column in ("store", "context tokens", "http_stored ms", "above SQLite ms", "ws_cached ms (control)"):
        table.add_column(column, justify="right")
    for name, point in result["stores"].items():
        for index, length in enumerate(result["lengths"]):
            above = point["above_sqlite_ms"]
            table.add_row(name, f"{length:,}", f"{point['stored_ms'][index]:.2f}",
                          f"{above[index]:+.2f}" if above is not None else "n/a", f"{point['control_ms'][index]:.2f}")
    wide_console().print(table)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, point in result["stores"].items():
        ax.plot(result["lengths"], point["stored_ms"], marker="o", label=f"{name}: http_stored")
    ax.set_xscale("log")
    finish_plot(fig, ax, path, xlabel="context tokens", ylabel="server ms per store:true turn (median)",
                title="tether: a store:true HTTP turn, store by store")


async def one_round(store: str, lengths: list[int], repeats: int) -> dict[str, Any]:
    growth_turns = sum(lengths) // (MAX_OUTPUT_CHARS // CHARS_PER_TOKEN) + len(lengths) * (repeats + 2) + 16
    serve_args = () if store == "sqlite" else ("--store", store)
    console = wide_console()
    with tether_server(fast_script(growth_turns + 64), serve_args=serve_args) as server:
        return await measure(server, lengths, repeats, console)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tether.bench.store_turn_cost",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", default="sqlite,embedded-postgres,embedded-postgres-async")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lengths", default="1000,10000,100000")
    parser.add_argument("--repeats", type=int, default=7, help="timed turns per length, mode and round")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.stores.split(",") if name.strip()]
    lengths = sorted(int(x) for x in args.lengths.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with contextlib.ExitStack() as stack:
        postgres: str | None = None
        specs: dict[str, str] = {}
        for name in names:
            if name.startswith("embedded-postgres"):
                if postgres is None:
                    from .postgres import loopback_postgres

                    postgres = stack.enter_context(loopback_postgres())
                specs[name] = postgres + (f"?{ASYNC_COMMIT}" if name == "embedded-postgres-async" else "")
            else:
                specs[name] = name
        for round_index in range(max(1, args.rounds)):
            order = names[round_index % len(names):] + names[: round_index % len(names)]
            for name in order:
                runs[name].append(asyncio.run(one_round(specs[name], lengths, max(1, args.repeats))))
                print(f"  round {round_index + 1}: {name} done", flush=True)
    result = summarize(runs, lengths)
    print_table(result)
    write_json(result, args.out / "store_turn_cost.json")
    plot(result, args.out / "store_turn_cost.png")
    print(f"wrote {args.out / 'store_turn_cost.json'} and {args.out / 'store_turn_cost.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
