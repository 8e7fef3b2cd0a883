"""Property-based fuzzing against a real server: generated bodies for every route, odd ids and query
strings, and generated WebSocket frames. Nothing a client sends may get a 5xx, an error outside the
API's envelope, a cut stream or a `server_error` failure; the socket answers after every bad frame and
the server stays up with no traceback in its log.

Seeded (`derandomize`) and bounded to well under a minute; `scripts/fuzz.py` runs the same
strategies for as long as one likes and counts what it finds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .fuzz_support import (
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
from .support import RunningServer, serve_script

TURNS = [{"text": "ok"}, {"tool_calls": [{"name": "f", "arguments": {"a": 1}}]}, {"text": "done"}]
FUZZ = settings(
    derandomize=True,  # a fixed seed: CI runs the same examples every time
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    max_examples=400,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve_script(tmp_path_factory.mktemp("fuzz"), TURNS) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def known_ids(http: httpx.Client) -> list[str]:
    """Ids that exist: a stored response and a background one, so the id routes reach past the 404."""
    stored = http.post("/v1/responses", json={"model": "m", "input": "hi"}).json()["id"]
    background = http.post("/v1/responses", json={"model": "m", "input": "hi", "background": True}).json()["id"]
    return [stored, background]


def assert_alive(server: RunningServer) -> None:
    assert server.process.poll() is None, server.log()[-3000:]
    assert httpx.get(server.url + "/livez", timeout=10).status_code == 200
    assert "Traceback" not in server.log(), server.log()[-5000:]


@FUZZ
@given(body=create_bodies())
def test_create_bodies(server: RunningServer, http: httpx.Client, body: Any) -> None:
    assert http_problems(post_body(http, "/v1/responses", body)) == []


@settings(FUZZ, max_examples=100)
@given(body=create_bodies(stream=True))
def test_streamed_create_bodies(server: RunningServer, http: httpx.Client, body: Any) -> None:
    assert http_problems(post_body(http, "/v1/responses", body)) == []


@settings(FUZZ, max_examples=150)
@given(body=create_bodies(), route=st.sampled_from(BODY_ROUTES[1:]))
def test_token_count_and_compact_bodies(server: RunningServer, http: httpx.Client, body: Any, route: str) -> None:
    assert http_problems(post_body(http, route, body)) == []


@settings(FUZZ, max_examples=300)
@given(
    which=st.one_of(st.integers(min_value=0, max_value=1), ids),
    raw=st.booleans(),
    route=st.sampled_from(ID_ROUTES),
    query=queries,
    body=st.one_of(st.none(), json_values),
)
def test_id_routes(
    server: RunningServer, http: httpx.Client, known_ids: list[str], which: Any, raw: bool, route: str,
    query: dict[str, str], body: Any,
) -> None:
    response_id = known_ids[which] if isinstance(which, int) else which
    assert http_problems(call_id_route(http, route, response_id, raw=raw, query=query, body=body)) == []


@pytest.fixture(scope="module")
def sock(server: RunningServer) -> Iterator[FuzzSocket]:
    connection = FuzzSocket(server.ws_url)
    yield connection
    connection.close()


@settings(FUZZ, max_examples=1500)
@given(frame=ws_frames)
def test_websocket_frames(server: RunningServer, sock: FuzzSocket, frame: Frame) -> None:
    assert sock.exchange(frame).problems == []


def test_websocket_still_serves_turns_after_the_fuzz(server: RunningServer, sock: FuzzSocket) -> None:
    assert sock.reconnects == 0  # no frame closed the socket
    outcome = sock.exchange(Frame('{"type": "response.create", "model": "m", "input": "hi", "store": false}', True))
    assert outcome.problems == [] and outcome.events >= 3  # created, in_progress, ..., completed


def test_server_alive_after_the_fuzz(server: RunningServer) -> None:
    assert_alive(server)
