"""Hostile input over HTTP (issue 10): each case once answered 500, streamed without end or inflated a
decompression bomb. Every one is now a 4xx in the API's envelope with the exact `param`; the probes
for load balancers answer without a key and say nothing but a status."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tether.api.compaction import MAX_INFLATED_BYTES, CompactionUnpacker, compact
from tether.api.errors import APIError
from tether.api.nesting import MAX_JSON_DEPTH

from .hostile_inputs import BAD_BLOBS, DEEP, UNHASHABLE, blob, bomb, deep_array
from .support import RunningServer, assert_error, running_server, serve_script, write_script

KEY = "sk-hardening"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve_script(tmp_path_factory.mktemp("hardening"), [{"text": "fine"}]) as running:
        yield running


def post_raw(server: RunningServer, text: str, path: str = "/responses") -> httpx.Response:
    return httpx.post(server.base_url + path, content=text.encode(), headers={"Content-Type": "application/json"},
                      timeout=60)


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


# -- defect 1: unhashable values at membership checks ----------------------------------------------

@pytest.mark.parametrize(("fields", "param"), UNHASHABLE)
def test_unhashable_values_are_400_with_their_param(server: RunningServer, fields: dict[str, Any], param: str) -> None:
    body = {"model": "m", "input": "hi", **fields}
    assert_error(httpx.post(server.base_url + "/responses", json=body), 400, param=param)
    # The streaming path refuses before the first event, and the token count says the same.
    assert_error(httpx.post(server.base_url + "/responses", json={**body, "stream": True}), 400, param=param)
    assert_error(httpx.post(server.base_url + "/responses/input_tokens", json=body), 400, param=param)


# -- defect 1: repr() of deep values, nesting that cannot be written back out ----------------------

@pytest.mark.parametrize(("field", "param"), DEEP)
@pytest.mark.parametrize("path", ["/responses", "/responses/input_tokens", "/responses/compact"])
def test_nesting_past_the_limit_is_400(server: RunningServer, field: str, param: str, path: str) -> None:
    error = assert_error(post_raw(server, '{"model": "m", ' + field + "}", path), 400, param=param)
    assert f"{MAX_JSON_DEPTH} levels" in error["message"]


def test_deep_value_refused_before_a_stream_starts(server: RunningServer) -> None:
    field = '"input": [{"type": "web_search_call", "action": ' + deep_array(300) + "}]"
    assert_error(post_raw(server, '{"model": "m", "stream": true, ' + field + "}"), 400, param="input[0]")


def test_nesting_at_the_limit_is_served_stored_and_listed(server: RunningServer) -> None:
    # Body (1) > tools (2) > tool (3) > parameters (4) ... down to level 64 exactly.
    parameters: dict[str, Any] = {"type": "object"}
    while 3 + depth_of(parameters) < MAX_JSON_DEPTH:
        parameters = {"type": "object", "properties": {"x": parameters}}
    if 3 + depth_of(parameters) > MAX_JSON_DEPTH:
        parameters = parameters["properties"]["x"] | {"wrap": {}}
    assert 3 + depth_of(parameters) == MAX_JSON_DEPTH
    tools = [{"type": "function", "name": "f", "parameters": parameters}]
    action: Any = 1
    for _ in range(MAX_JSON_DEPTH - 3):  # body > input > item > action ... to level 64
        action = [action]
    item = {"type": "web_search_call", "status": "completed", "action": action}
    body = {"model": "m", "input": [item, {"role": "user", "content": "hi"}], "tools": tools}
    created = httpx.post(server.base_url + "/responses", json=body, timeout=60)
    assert created.status_code == 200, created.text
    response = created.json()
    assert response["status"] == "completed" and response["tools"][0]["parameters"] == parameters
    stored = httpx.get(f"{server.base_url}/responses/{response['id']}", timeout=60)
    assert stored.status_code == 200 and stored.json()["tools"][0]["parameters"] == parameters
    listed = httpx.get(f"{server.base_url}/responses/{response['id']}/input_items", params={"order": "asc"})
    assert listed.status_code == 200 and listed.json()["data"][0]["action"] == action
    # One level more is refused.
    too_deep = {**body, "tools": [{"type": "function", "name": "f", "parameters": {"wrap": parameters}}]}
    assert_error(httpx.post(server.base_url + "/responses", json=too_deep), 400, param="tools[0]")
    # And streamed, the events (the response two levels deeper) are all written.
    with httpx.stream("POST", server.base_url + "/responses", json={**body, "stream": True}, timeout=60) as streamed:
        lines = [line for line in streamed.iter_lines() if line.startswith("data: ")]
    assert json.loads(lines[-1].removeprefix("data: "))["type"] == "response.completed"


# -- defects 1 and 2: compaction blobs are input ---------------------------------------------------

@pytest.mark.parametrize("content", BAD_BLOBS)
@pytest.mark.parametrize("path", ["/responses", "/responses/input_tokens", "/responses/compact"])
def test_bad_compaction_blob_is_400(server: RunningServer, content: str, path: str) -> None:
    body = {"model": "m", "input": [{"role": "user", "content": "hi"}, {"type": "compaction",
                                                                         "encrypted_content": content}]}
    assert_error(httpx.post(server.base_url + path, json=body, timeout=60), 400, param="input[1].encrypted_content")


def test_someone_elses_compaction_stays_opaque(server: RunningServer) -> None:
    body = {"model": "m", "input": [{"type": "compaction", "encrypted_content": "gAAAA-openai-opaque"},
                                    {"role": "user", "content": "hi"}]}
    created = httpx.post(server.base_url + "/responses", json=body, timeout=60)
    assert created.status_code == 200 and created.json()["status"] == "completed"


def test_compaction_bomb_is_413(server: RunningServer) -> None:
    content = bomb()
    assert len(content) < 100_000  # a small body...
    body = {"model": "m", "input": [{"type": "compaction", "encrypted_content": content}]}
    for path in ("/responses/input_tokens", "/responses", "/responses/compact"):
        error = assert_error(httpx.post(server.base_url + path, json=body, timeout=60), 413,
                             param="input[0].encrypted_content", code="request_too_large")
        assert str(MAX_INFLATED_BYTES) in error["message"]  # ...that says what the cap is


def test_compaction_budget_is_per_request(server: RunningServer) -> None:
    """Each blob under the cap, together over it: refused at the one that crosses it."""
    half = blob(b'[{"type": "message", "role": "user", "content": "' + b"b" * (MAX_INFLATED_BYTES // 2) + b'"}]')
    body = {"model": "m", "input": [{"type": "compaction", "encrypted_content": half},
                                    {"type": "compaction", "encrypted_content": half}]}
    assert_error(httpx.post(server.base_url + "/responses/input_tokens", json=body, timeout=60), 413,
                 param="input[1].encrypted_content")


def test_unpacker_holds_exactly_its_budget() -> None:
    payload = b'[{"type": "message", "role": "user", "content": "' + b"c" * 40 + b'"}]'
    item = {"type": "compaction", "encrypted_content": blob(payload)}
    assert CompactionUnpacker(limit=len(payload)).unpack(item, "input[0]") is not None
    with pytest.raises(APIError) as caught:
        CompactionUnpacker(limit=len(payload) - 1).unpack(item, "input[0]")
    assert caught.value.status == 413 and caught.value.param == "input[0].encrypted_content"


def test_compact_refuses_a_blob_it_could_not_take_back() -> None:
    context = [{"type": "message", "id": "msg_1", "role": "user", "status": "completed",
                "content": [{"type": "input_text", "text": "d" * MAX_INFLATED_BYTES}]}]
    with pytest.raises(APIError) as caught:
        compact(context, 1)
    assert caught.value.status == 400 and str(MAX_INFLATED_BYTES) in caught.value.message


# -- defects 1 and 3: query parameters -------------------------------------------------------------


@pytest.fixture(scope="module")
def stored_id(server: RunningServer) -> str:
    return str(httpx.post(server.base_url + "/responses", json={"model": "m", "input": "hi"}).json()["id"])


@pytest.mark.parametrize("limit", ["\u00b2", "9" * 5000, "\u0663", "+5", " 5", "1e3", "", "0" * 30 + "1" * 25])
def test_limit_must_be_ascii_digits_in_range(server: RunningServer, stored_id: str, limit: str) -> None:
    url = f"{server.base_url}/responses/{stored_id}/input_items"
    assert_error(httpx.get(url, params={"limit": limit}), 400, param="limit")


def test_limit_with_leading_zeros_is_still_a_number(server: RunningServer, stored_id: str) -> None:
    listed = httpx.get(f"{server.base_url}/responses/{stored_id}/input_items", params={"limit": "0001"})
    assert listed.status_code == 200 and len(listed.json()["data"]) == 1


@pytest.mark.parametrize(("name", "value"), [("stream", "banana"), ("starting_after", "-1"),
                                             ("starting_after", "--1"), ("starting_after", "9" * 5000)])
def test_retrieve_query_is_checked(server: RunningServer, stored_id: str, name: str, value: str) -> None:
    assert_error(httpx.get(f"{server.base_url}/responses/{stored_id}", params={name: value}), 400, param=name)


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    turns = [{"text": "slow words " * 400}]
    with serve_script(tmp_path_factory.mktemp("slow"), turns, tokens_per_second=100) as running:
        yield running


@pytest.mark.parametrize("after", ["-99999", "-1", "--1", "\u00b2"])
def test_negative_starting_after_on_a_running_response_is_400(slow_server: RunningServer, after: str) -> None:
    created = httpx.post(slow_server.base_url + "/responses",
                         json={"model": "m", "input": "go", "background": True}).json()
    url = f"{slow_server.base_url}/responses/{created['id']}"
    with httpx.stream("GET", url, params={"stream": "true", "starting_after": after}, timeout=30) as replay:
        # Checked before any event: a negative index once replayed the run from its end, without end.
        assert replay.status_code == 400, replay.status_code
        replay.read()
        assert_error(replay, 400, param="starting_after")
    httpx.post(url + "/cancel", timeout=30)


# -- defect 10: probes without a key ---------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve_script(tmp_path_factory.mktemp("keyed"), [{"text": "fine"}], "--api-key", KEY) as running:
        yield running


@pytest.mark.parametrize("path", ["/livez", "/readyz"])
def test_probes_need_no_key_and_reveal_nothing(keyed_server: RunningServer, path: str) -> None:
    answer = httpx.get(keyed_server.url + path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == {"status": "ok"}
    # A wrong key changes nothing: the probe does not look at it.
    assert httpx.get(keyed_server.url + path, headers={"Authorization": "Bearer nope"}).json() == {"status": "ok"}


def test_detailed_health_stays_behind_the_key(keyed_server: RunningServer) -> None:
    assert_error(httpx.get(keyed_server.url + "/health"), 401, code="missing_api_key")
    detailed = httpx.get(keyed_server.url + "/health", headers={"Authorization": f"Bearer {KEY}"})
    assert detailed.status_code == 200 and "engine" in detailed.json()


def test_readiness_fails_while_draining_and_liveness_holds(tmp_path: Path) -> None:
    script = write_script(tmp_path, [{"text": "slow words " * 300}], tokens_per_second=100, ttft_ms=1)
    with running_server(tmp_path, "--backend", "scripted", "--script", str(script), "--store", "memory") as server:
        with connect(server.ws_url) as sock:
            sock.send(json.dumps({"type": "response.create", "model": "m", "input": "go", "store": False}))
            assert json.loads(sock.recv(timeout=10))["type"] == "response.created"
            assert httpx.get(server.url + "/readyz").status_code == 200
            server.process.send_signal(signal.SIGTERM)
            # The response in flight keeps the listener open while it drains: the probe must say so.
            seen: list[tuple[int, Any]] = []
            while not seen or seen[-1][0] == 200:
                answer = httpx.get(server.url + "/readyz", timeout=10)
                seen.append((answer.status_code, answer.json()))
            assert seen[-1] == (503, {"status": "unavailable"})
            assert httpx.get(server.url + "/livez", timeout=10).status_code == 200
