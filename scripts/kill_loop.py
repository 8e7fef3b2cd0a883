"""Durability under `kill -9`, larger than the test suite's run: agents keep `store: true` chains going
over WebSocket and HTTP while the server is killed with SIGKILL again and again, each time right after
a `response.completed` arrived; after every restart each acknowledged response must be readable and
each chain must continue. Prints a table (and `--json` writes one).

    .venv/bin/python scripts/kill_loop.py --kills 40 --agents 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support import RunningServer, start_server, write_script


def serve(directory: Path) -> RunningServer:
    script = write_script(directory, [{"text": "noted"}] * 1000, tokens_per_second=20000)
    store = f"sqlite:{directory / 'responses.sqlite3'}"
    return start_server(directory, "--backend", "scripted", "--script", str(script), "--store", store)


async def agent(server: RunningServer, heads: list[str | None], index: int, acknowledged: list[str],
                stop: asyncio.Event) -> None:
    """Continues its chain until the server dies; each completed id is acknowledged."""
    try:
        if index % 2 == 0:
            async with websockets.connect(server.ws_url) as ws:
                while not stop.is_set():
                    await ws.send(json.dumps({"type": "response.create", "model": "m", "input": "more",
                                              "previous_response_id": heads[index]}))
                    while True:
                        event = json.loads(await ws.recv())
                        if event["type"] in ("response.completed", "response.failed", "error"):
                            break
                    if event["type"] != "response.completed":
                        raise RuntimeError(f"agent {index}: {event}")
                    heads[index] = event["response"]["id"]
                    acknowledged.append(event["response"]["id"])
                    stop.set()  # the first acknowledgement of the round triggers the kill
        else:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
                while not stop.is_set():
                    answer = await client.post("/responses", json={"model": "m", "input": "more",
                                                                   "previous_response_id": heads[index]})
                    if answer.status_code != 200:
                        raise RuntimeError(f"agent {index}: {answer.status_code} {answer.text}")
                    heads[index] = answer.json()["id"]
                    acknowledged.append(answer.json()["id"])
    except (websockets.ConnectionClosed, httpx.HTTPError, OSError):
        pass  # the server was killed under it: what it had acknowledged is what counts


async def round_trip(server: RunningServer, heads: list[str | None], acknowledged: list[str]) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(agent(server, heads, index, acknowledged, stop)) for index in range(len(heads))]
    await asyncio.wait_for(stop.wait(), 60)
    await asyncio.sleep(random.uniform(0, 0.02))  # "right after" a completion, give or take the other agents
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    await asyncio.gather(*tasks, return_exceptions=True)


def verify(server: RunningServer, heads: list[str | None], acknowledged: list[str]) -> tuple[int, int]:
    """(acknowledged responses missing, chains that cannot be continued)."""
    lost = 0
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for response_id in acknowledged:
            lost += client.get(f"/responses/{response_id}").status_code != 200
        broken = 0
        for head in heads:
            if head is None:
                continue
            answer = client.post("/responses", json={"model": "m", "input": "check", "store": False,
                                                     "previous_response_id": head})
            broken += answer.status_code != 200
    return lost, broken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    random.seed(args.seed)
    heads: list[str | None] = [None] * args.agents
    acknowledged: list[str] = []
    lost = broken = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tether-kill-") as tmp:
        directory = Path(tmp)
        for _ in range(args.kills):
            server = serve(directory)
            asyncio.run(round_trip(server, heads, acknowledged))
        server = serve(directory)
        try:
            lost, broken = verify(server, heads, acknowledged)
        finally:
            server.stop()
    result: dict[str, Any] = {"kills": args.kills, "agents": args.agents, "acknowledged": len(acknowledged),
                              "lost": lost, "chains": args.agents, "chains_broken": broken,
                              "seconds": round(time.perf_counter() - started, 1)}
    print("| kills | agents | acknowledged responses | lost | chains | chains that cannot continue |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {args.kills} | {args.agents} | {len(acknowledged)} | {lost} | {args.agents} | {broken} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if lost == 0 and broken == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
