"""Several tether processes on one store: two independent `tether serve` processes on one PostgreSQL,
and `tether serve --workers 2` on one SQLite file. A stored chain started on one process continues on
the other over HTTP and over a new WebSocket; a response is readable on the other process as soon as
its terminal event was sent; a worker that dies is replaced, and its chains live on.

Which worker of `--workers` serves a connection is found from the kernel's own socket tables (psutil):
the worker process that holds the server end of the client's TCP connection.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from .pg_support import EmbeddedPostgres
from .support import RunningServer, running_server, write_script
from .ws_support import collect, completed, create_event, output_text, user

TURNS = [{"text": f"shared answer {k}"} for k in range(10)]
WAIT_S = 30.0
#: new connections tried to reach a given worker: the kernel picks one of 2 at random for each
TRIES = 64
T = TypeVar("T")


def scripted(directory: Path, store: str, *extra: str) -> tuple[str, ...]:
    return ("--backend", "scripted", "--script", str(write_script(directory, TURNS)), "--store", store, *extra)


def body(text: str, previous: str | None = None) -> dict[str, Any]:
    return {"model": "m", "input": [user(text)], "previous_response_id": previous, "store": True}


def create(http: httpx.Client, text: str, previous: str | None = None) -> dict[str, Any]:
    reply = http.post("/v1/responses", json=body(text, previous))
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


def ws_create(conn: Any, text: str, previous: str | None = None) -> dict[str, Any]:
    conn.send(create_event(**body(text, previous)))
    return completed(collect(conn))


def wait_readable(http: httpx.Client, response_id: str) -> None:
    """Until the process behind `http` can read the response from the store (bounded)."""
    deadline = time.monotonic() + WAIT_S
    while http.get(f"/v1/responses/{response_id}").status_code != 200:
        assert time.monotonic() < deadline, f"{response_id} never became readable"
        time.sleep(0.02)


# -- two independent processes on one PostgreSQL --------------------------------------------------------


@pytest.fixture(scope="module")
def pair(postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RunningServer]]:
    directory = tmp_path_factory.mktemp("pair")
    args = scripted(directory, postgres.create_database())
    with running_server(directory, *args) as first, running_server(directory, *args) as second:
        yield [first, second]


@pytest.fixture
def https(pair: list[RunningServer]) -> Iterator[list[httpx.Client]]:
    with httpx.Client(base_url=pair[0].url, timeout=30) as a, httpx.Client(base_url=pair[1].url, timeout=30) as b:
        yield [a, b]


def test_http_chain_alternates_between_processes(https: list[httpx.Client]) -> None:
    previous: str | None = None
    for k in range(6):
        here, there = https[k % 2], https[(k + 1) % 2]
        response = create(here, f"turn {k}", previous)
        # The scripted model plays answer k only if all k earlier answers are in its context.
        assert output_text(response) == f"shared answer {k}"
        wait_readable(there, response["id"])
        previous = response["id"]


def test_ws_chain_continues_on_a_new_websocket_on_the_other_process(
    pair: list[RunningServer], https: list[httpx.Client]
) -> None:
    first, second = (OpenAI(base_url=server.base_url, api_key="unused") for server in pair)
    with first.responses.connect() as conn:
        r0 = ws_create(conn, "turn 0")
        r1 = ws_create(conn, "turn 1", r0["id"])  # from the connection's own cache
    assert output_text(r1) == "shared answer 1"
    wait_readable(https[1], r1["id"])
    with second.responses.connect() as conn:
        r2 = ws_create(conn, "turn 2", r1["id"])  # hydrated from PostgreSQL: the whole chain
        assert output_text(r2) == "shared answer 2"
        r3 = ws_create(conn, "turn 3", r2["id"])
    assert output_text(r3) == "shared answer 3"
    wait_readable(https[0], r3["id"])
    assert output_text(create(https[0], "turn 4", r3["id"])) == "shared answer 4"


def test_the_other_process_reads_a_response_right_after_its_terminal_event(
    pair: list[RunningServer], https: list[httpx.Client]
) -> None:
    """Needs `store:true` committed before the terminal event is sent (issue 10, item 4): no waiting here."""
    client = OpenAI(base_url=pair[0].base_url, api_key="unused")
    with client.responses.connect() as conn:
        previous = None
        for k in range(5):
            response = ws_create(conn, f"turn {k}", previous)
            reply = https[1].get(f"/v1/responses/{response['id']}")  # the moment completed arrived
            assert reply.status_code == 200, reply.text
            assert reply.json()["output"] == response["output"]
            previous = response["id"]
    previous = None
    for k in range(0, 10, 2):
        response = create(https[0], f"turn {k}", previous)
        continued = create(https[1], f"turn {k + 1}", response["id"])  # at once, on the other process
        assert output_text(continued) == f"shared answer {k + 1}"
        previous = continued["id"]


def recent_hits(server: RunningServer) -> float:
    """How many continuations this process served from its memory of recently committed responses."""
    families = text_string_to_metric_families(httpx.get(f"{server.url}/metrics").text)
    return sum(sample.value for family in families if family.name == "tether_recent_responses"
               for sample in family.samples if sample.name.endswith("_total") and sample.labels["result"] == "hit")


def test_a_deletion_on_one_process_stops_the_others_memory_continuing_the_chain(
    pair: list[RunningServer], https: list[httpx.Client]
) -> None:
    here, there = https
    first = create(here, "turn 0")
    second = create(here, "turn 1", first["id"])
    hits = recent_hits(pair[0])
    third = create(here, "turn 2", second["id"])
    assert output_text(third) == "shared answer 2"
    assert recent_hits(pair[0]) == hits + 1  # served from this process's memory, not the chain read
    assert there.delete(f"/v1/responses/{first['id']}").status_code == 200  # an ancestor, elsewhere
    refused = here.post("/v1/responses", json=body("turn 3", third["id"]))
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "previous_response_not_found"
    head = create(here, "again 0")
    assert there.delete(f"/v1/responses/{head['id']}").status_code == 200  # the head itself
    refused = here.post("/v1/responses", json=body("again 1", head["id"]))
    assert refused.json()["error"]["code"] == "previous_response_not_found"


# -- one port, `--workers 2`, one SQLite file -----------------------------------------------------------


def workers_of(server: RunningServer, count: int = 2) -> list[psutil.Process]:
    """The supervisor's worker processes, once all `count` are serving (the supervisor says so)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        children = psutil.Process(server.process.pid).children()
        if len(children) == count and server.log().count("workers serving") >= 1:
            return children
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)


def serving_pid(workers: list[psutil.Process], client_port: int) -> int:
    """The worker holding the server end of the client's TCP connection from `client_port`."""
    for worker in workers:
        for conn in worker.net_connections(kind="tcp"):
            if conn.raddr and conn.raddr.port == client_port:
                return worker.pid
    raise AssertionError(f"no worker holds the connection from port {client_port}")


def on_worker(pid: int, workers: list[psutil.Process], connect: Callable[[], tuple[T, int]]) -> T:
    """A new connection that the kernel gave to worker `pid` (others are made and dropped until one is)."""
    for _ in range(TRIES):
        conn, client_port = connect()
        if serving_pid(workers, client_port) == pid:
            return conn
    raise AssertionError(f"{TRIES} connections, none reached worker {pid}")


def http_on(
    server: RunningServer, workers: list[psutil.Process], pid: int, stack: contextlib.ExitStack
) -> httpx.Client:
    def connect() -> tuple[httpx.Client, int]:
        client = stack.enter_context(httpx.Client(base_url=server.url, timeout=30))
        stream = client.get("/health").extensions["network_stream"]
        return client, int(stream.get_extra_info("socket").getsockname()[1])

    return on_worker(pid, workers, connect)


def ws_on(server: RunningServer, workers: list[psutil.Process], pid: int, stack: contextlib.ExitStack) -> Any:
    sdk = OpenAI(base_url=server.base_url, api_key="unused")

    def connect() -> tuple[Any, int]:
        conn = stack.enter_context(sdk.responses.connect())
        return conn, int(conn._connection.socket.getsockname()[1])

    return on_worker(pid, workers, connect)


@pytest.fixture(scope="module")
def workers_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("workers")
    db = directory / "db" / "responses.sqlite3"
    with running_server(directory, *scripted(directory, f"sqlite:{db}", "--workers", "2")) as server:
        yield server


def test_workers_are_two_processes_listening_on_one_port(workers_server: RunningServer) -> None:
    workers = workers_of(workers_server)
    port = int(workers_server.url.rsplit(":", 1)[1])
    for worker in workers:
        listening = [c for c in worker.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
        assert [c.laddr.port for c in listening] == [port], listening
    assert len({worker.pid for worker in workers}) == 2


def test_a_chain_crosses_workers_over_http_and_websocket(workers_server: RunningServer) -> None:
    workers = workers_of(workers_server)
    one, two = (worker.pid for worker in workers)
    with contextlib.ExitStack() as stack:
        r0 = ws_create(ws_on(workers_server, workers, one, stack), "turn 0")
        wait_readable(http_on(workers_server, workers, two, stack), r0["id"])
        r1 = ws_create(ws_on(workers_server, workers, two, stack), "turn 1", r0["id"])
        assert output_text(r1) == "shared answer 1"
        wait_readable(http_on(workers_server, workers, one, stack), r1["id"])
        r2 = create(http_on(workers_server, workers, one, stack), "turn 2", r1["id"])
        assert output_text(r2) == "shared answer 2"
        wait_readable(http_on(workers_server, workers, two, stack), r2["id"])
        r3 = create(http_on(workers_server, workers, two, stack), "turn 3", r2["id"])
        assert output_text(r3) == "shared answer 3"


def test_a_killed_worker_is_replaced_and_its_chains_continue(tmp_path: Path) -> None:
    db = tmp_path / "db" / "responses.sqlite3"
    with running_server(tmp_path, *scripted(tmp_path, f"sqlite:{db}", "--workers", "2")) as server:
        workers = workers_of(server)
        victim, survivor = workers
        with contextlib.ExitStack() as stack:
            first = create(http_on(server, workers, victim.pid, stack), "turn 0")
            wait_readable(http_on(server, workers, survivor.pid, stack), first["id"])
        os.kill(victim.pid, signal.SIGKILL)
        deadline = time.monotonic() + WAIT_S
        while "starting another" not in server.log() or len(psutil.Process(server.process.pid).children()) < 2:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        replacement = next(w for w in psutil.Process(server.process.pid).children() if w.pid != survivor.pid)
        assert replacement.pid != victim.pid
        with contextlib.ExitStack() as stack:
            workers = [survivor, replacement]
            deadline = time.monotonic() + WAIT_S
            while not any(c.status == psutil.CONN_LISTEN for c in replacement.net_connections(kind="tcp")):
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.05)
            second = create(http_on(server, workers, replacement.pid, stack), "turn 1", first["id"])
            assert output_text(second) == "shared answer 1"
        assert server.stop() == 0  # the supervisor stops its workers and exits cleanly


def scraped(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of one `/metrics` scrape: (name, sorted labels) -> value."""
    reply = http.get("/metrics")
    assert reply.status_code == 200, reply.text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(reply.text) for sample in family.samples}


def test_metrics_from_any_worker_count_every_worker(tmp_path: Path) -> None:
    db = tmp_path / "db" / "responses.sqlite3"
    completed_http = ("tether_responses_total", (("status", "completed"), ("transport", "http")))
    with running_server(tmp_path, *scripted(tmp_path, f"sqlite:{db}", "--workers", "2")) as server:
        workers = workers_of(server)
        one, two = (worker.pid for worker in workers)
        with contextlib.ExitStack() as stack:
            for k in range(3):
                create(http_on(server, workers, one, stack), f"one {k}")
            for k in range(2):
                create(http_on(server, workers, two, stack), f"two {k}")
            # exactly one WebSocket, on whichever worker takes it (ws_on would leave its misses open)
            held = stack.enter_context(OpenAI(base_url=server.base_url, api_key="unused").responses.connect())
            ws_create(held, "on the socket")
            for pid in (one, two):  # each worker answers for both
                samples = scraped(http_on(server, workers, pid, stack))
                assert samples[completed_http] == 5, (pid, samples.get(completed_http))
                assert samples[("tether_ws_connections", ())] == 1
                assert samples[("tether_responses_total", (("status", "completed"), ("transport", "ws")))] == 1


def test_workers_refuse_a_store_they_cannot_share(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tether.cli", "serve", "--workers", "2", *scripted(tmp_path, "memory")],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "--workers needs a store the workers share" in done.stderr
