"""A larger fuzz run than CI's: the strategies of tests/fuzz_support.py against a real scripted server,
for as many examples as asked, counting instead of stopping at the first problem.

    .venv/bin/python scripts/fuzz.py --bodies 5000 --ids 2000 --frames 5000 --seed 1 --json fuzz.json

Prints requests and frames tried, answers by status, 5xx and other problems (the first few of each
kind shown), and whether the server was still alive with a clean log; `--json` writes the same.
Exits 1 when any problem was found. Not part of CI: `tests/test_fuzz.py` runs a bounded, seeded subset.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `tests` is not installed: run from the repo

from tests.fuzz_support import (
    BODY_ROUTES,
    ID_ROUTES,
    Frame,
    FuzzSocket,
    call_id_route,
    create_bodies,
    http_problems,
    ids,
    json_values,
    post_body,
    queries,
    ws_frames,
)
from tests.support import RunningServer, serve_script

TURNS = [{"text": "ok"}, {"tool_calls": [{"name": "f", "arguments": {"a": 1}}]}, {"text": "done"}]
SHOWN_PER_KIND = 3


@dataclass
class Tally:
    """What one family of inputs got back."""

    tried: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def record(self, status: int, problems: list[str]) -> None:
        self.tried += 1
        self.statuses[status] += 1
        self.problems += problems

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)


def run_settings(examples: int, run_seed: int) -> Any:
    options = settings(
        max_examples=examples,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],  # counting, not shrinking: nothing here raises
    )
    return lambda test: seed(run_seed)(options(test))


def fuzz_bodies(http: httpx.Client, tallies: dict[str, Tally], examples: int, run_seed: int) -> None:
    @run_settings(examples, run_seed)
    @given(body=create_bodies(), route=st.sampled_from(BODY_ROUTES))
    def one(body: Any, route: str) -> None:
        answer = post_body(http, route, body)
        tallies[f"POST {route}"].record(answer.status_code, http_problems(answer))

    one()


def fuzz_ids(http: httpx.Client, known: list[str], tallies: dict[str, Tally], examples: int, run_seed: int) -> None:
    @run_settings(examples, run_seed)
    @given(which=st.one_of(st.integers(0, len(known) - 1), ids), raw=st.booleans(), route=st.sampled_from(ID_ROUTES),
           query=queries, body=st.one_of(st.none(), json_values))
    def one(which: Any, raw: bool, route: str, query: dict[str, str], body: Any) -> None:
        response_id = known[which] if isinstance(which, int) else which
        answer = call_id_route(http, route, response_id, raw=raw, query=query, body=body)
        tallies[route].record(answer.status_code, http_problems(answer))

    one()


def fuzz_frames(server: RunningServer, tally: Tally, examples: int, run_seed: int) -> int:
    """Returns how often a frame lost the socket (each is also a problem)."""
    sock = FuzzSocket(server.ws_url)

    @run_settings(examples, run_seed)
    @given(frame=ws_frames)
    def one(frame: Frame) -> None:
        outcome = sock.exchange(frame)
        tally.tried += 1
        for status, count in outcome.errors_by_status.items():
            tally.statuses[status] += count
        tally.problems += outcome.problems

    try:
        one()
    finally:
        sock.close()
    return sock.reconnects


def report(tallies: dict[str, Tally], alive: bool, tracebacks: int, sockets_lost: int) -> dict[str, Any]:
    print(f"{'inputs':<34}{'tried':>8}{'5xx':>6}{'problems':>10}  answers by status")
    for name, tally in tallies.items():
        shown = ", ".join(f"{status}: {count}" for status, count in sorted(tally.statuses.items()))
        print(f"{name:<34}{tally.tried:>8}{tally.server_errors:>6}{len(tally.problems):>10}  {shown}")
    requests = sum(t.tried for name, t in tallies.items() if not name.startswith("WS"))
    frames = tallies["WS frames (error events)"].tried
    five_xx = sum(t.server_errors for t in tallies.values())
    problems = [problem for tally in tallies.values() for problem in tally.problems]
    print(f"\nHTTP requests tried: {requests}   WebSocket frames tried: {frames}   5xx: {five_xx}   "
          f"problems: {len(problems)}   sockets lost: {sockets_lost}   server alive: {alive}   "
          f"tracebacks in its log: {tracebacks}")
    kinds: Counter[str] = Counter()
    for problem in problems:
        kind = problem.split(":", 1)[0]
        kinds[kind] += 1
        if kinds[kind] <= SHOWN_PER_KIND:
            print(f"  - {problem[:400]}")
    return {
        "http_requests": requests,
        "ws_frames": frames,
        "server_errors": five_xx,
        "problems": len(problems),
        "ws_sockets_lost": sockets_lost,
        "server_alive": alive,
        "log_tracebacks": tracebacks,
        "by_input": {name: {"tried": t.tried, "statuses": {str(k): v for k, v in sorted(t.statuses.items())},
                            "problems": t.problems[:50]} for name, t in tallies.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bodies", type=int, default=3000, help="generated bodies for the three POST routes")
    parser.add_argument("--ids", type=int, default=1000, help="generated calls of the routes that name a response")
    parser.add_argument("--frames", type=int, default=3000, help="generated WebSocket frames")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here too")
    args = parser.parse_args()
    tallies: dict[str, Tally] = {f"POST {route}": Tally() for route in BODY_ROUTES}
    tallies.update({route: Tally() for route in ID_ROUTES})
    tallies["WS frames (error events)"] = Tally()
    with tempfile.TemporaryDirectory(prefix="tether-fuzz-") as tmp, serve_script(Path(tmp), TURNS) as server:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            known = [http.post("/v1/responses", json={"model": "m", "input": "hi"}).json()["id"],
                     http.post("/v1/responses", json={"model": "m", "input": "hi", "background": True}).json()["id"]]
            fuzz_bodies(http, tallies, args.bodies, args.seed)
            fuzz_ids(http, known, tallies, args.ids, args.seed)
        lost = fuzz_frames(server, tallies["WS frames (error events)"], args.frames, args.seed)
        alive = server.process.poll() is None and httpx.get(server.url + "/livez", timeout=10).status_code == 200
        tracebacks = server.log().count("Traceback")
    figures = report(tallies, alive, tracebacks, lost)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if figures["problems"] == 0 and alive and tracebacks == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
