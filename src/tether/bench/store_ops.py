"""What the store costs one `store:true` turn, in-process, store by store: the commit of the response
(`save`, before the terminal event) and the one-query hydration of its chain (`get_chain`, what an
HTTP continuation or a new WebSocket pays), as a chain grows turn by turn.

    python -m tether.bench.store_ops [--turns 200] [--stores sqlite,embedded-postgres,embedded-postgres-async]
        [--out DIR]

`embedded-postgres` is a throwaway PostgreSQL on TCP loopback with its default, durable commit (the WAL
flushed to disk); `embedded-postgres-async` is the same server with `synchronous_commit=off`, the
durability of tether's SQLite (WAL, synchronous=NORMAL: a commit is not flushed to disk at once). Any
`sqlite:PATH` or `postgresql://` URL works too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.table import Table

from ..store import open_store
from ..store.base import StoredResponse
from .report import machine_note, wide_console, write_json

ASYNC_COMMIT = "options=" + quote("-c synchronous_commit=off")


def turn_record(run: str, turn: int, parent: str | None) -> StoredResponse:
    """An agent turn's record: a ~300-byte tool output in, a short message and a function call out."""
    output = [
        {"type": "message", "id": f"msg_{run}_{turn}", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Reading the file next. " * 4, "annotations": []}]},
        {"type": "function_call", "id": f"fc_{run}_{turn}", "call_id": f"call_{run}_{turn}", "name": "read_file",
         "arguments": '{"path": "src/app.py"}', "status": "completed"},
    ]
    response = {"id": f"resp_{run}_{turn}", "object": "response", "created_at": 1_700_000_000 + turn,
                "status": "completed", "previous_response_id": parent, "output": output}
    tool_output = {"type": "function_call_output", "id": f"fco_{run}_{turn}", "call_id": f"call_{run}_{turn - 1}",
                   "output": "ok: 3 files changed, 12 insertions(+), 4 deletions(-)\n" * 6}
    return StoredResponse(response, [tool_output], "bench-owner")


def stored_bytes(spec: str) -> int | None:
    """How big the store's tables are now (indexes included): what the turns made it grow by."""
    if spec.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(spec.removeprefix("sqlite:"))) as conn:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(size)
    if spec.startswith(("postgresql://", "postgres://")):
        import psycopg

        from ..store.postgres import split_pool_options

        with psycopg.connect(split_pool_options(spec)[0]) as conn:
            sizes = "SELECT pg_total_relation_size('responses') + pg_total_relation_size('items')"
            row = conn.execute(sizes).fetchone()
        return int(row[0]) if row else None
    return None


async def measure(spec: str, turns: int) -> dict[str, Any]:
    store = open_store(spec)
    await store.open()
    run = uuid.uuid4().hex[:8]
    size_before = stored_bytes(spec)
    save_ms: list[float] = []
    chain_ms: list[float] = []
    parent: str | None = None
    try:
        for turn in range(turns):
            record = turn_record(run, turn, parent)
            started = time.perf_counter()
            await store.save(record)
            save_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            chain = await store.get_chain(record.id, record.owner)
            chain_ms.append((time.perf_counter() - started) * 1000)
            assert chain is not None and len(chain) == turn + 1
            parent = record.id
    finally:
        await store.close()
    size_after = stored_bytes(spec)
    grown = size_after - size_before if size_after is not None and size_before is not None else None
    tail = max(1, turns // 10)
    return {"turns": turns, "save_ms": save_ms, "chain_ms": chain_ms,
            "stored_bytes_per_turn": grown / turns if grown is not None else None,
            "rows_per_turn": 1 + sum(1 for item in [*record.input_items, *record.response["output"]] if "id" in item),
            "median_save_ms": statistics.median(save_ms), "median_chain_ms": statistics.median(chain_ms),
            "median_chain_ms_last": statistics.median(chain_ms[-tail:])}


def print_table(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"Store cost per store:true turn (median ms), chains grown to {result['turns']} turns")
    for column in ("store", "save (commit)", "chain read, all turns", "chain read, last 10%", "save + read",
                   "rows written / turn", "KiB stored / turn"):
        table.add_column(column, justify="right")
    for name, point in result["stores"].items():
        grown = point["stored_bytes_per_turn"]
        table.add_row(name, f"{point['median_save_ms']:.3f}", f"{point['median_chain_ms']:.3f}",
                      f"{point['median_chain_ms_last']:.3f}",
                      f"{point['median_save_ms'] + point['median_chain_ms']:.3f}", str(point["rows_per_turn"]),
                      f"{grown / 1024:.2f}" if grown is not None else "n/a")
    console.print(table)


async def run_all(names: list[str], turns: int, console: Console) -> dict[str, Any]:
    points: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tether-store-ops-")))
        postgres: str | None = None
        for name in names:
            if name == "sqlite":
                spec = f"sqlite:{folder / 'responses.sqlite3'}"
            elif name.startswith("embedded-postgres"):
                if postgres is None:
                    from .postgres import loopback_postgres

                    postgres = stack.enter_context(loopback_postgres())
                spec = postgres + (f"?{ASYNC_COMMIT}" if name == "embedded-postgres-async" else "")
            else:
                spec = name
            points[name] = await measure(spec, turns)
            console.print(f"  {name}: done")
    return {"benchmark": "store_ops", "machine": machine_note(), "turns": turns, "stores": points}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tether.bench.store_ops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=200, help="turns of the chain each store grows")
    parser.add_argument("--stores", default="sqlite,embedded-postgres,embedded-postgres-async",
                        help="comma-separated: sqlite | embedded-postgres | embedded-postgres-async | a --store value")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="folder for the JSON")
    args = parser.parse_args(argv)
    console = wide_console()
    result = asyncio.run(run_all([s for s in args.stores.split(",") if s], max(1, args.turns), console))
    print_table(result, console)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(result, args.out / "store_ops.json")
    console.print(f"wrote {args.out / 'store_ops.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
