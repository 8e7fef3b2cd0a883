"""WebSocket mode: the upgrade handshake (auth before the 101, no subprotocol, beta header, compression, 426)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI, OpenAI
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from .support import RunningServer, running_server, write_script
from .ws_support import acollect, assert_ws_error, collect, completed, create_event, output_text, recv

KEY = "k"
OTHER_KEY = "k-other"
BETA = {"OpenAI-Beta": "responses_websockets=2026-02-06, responses_multi_agent=v1"}


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("keyed")
    script = write_script(tmp, [{"text": "hello there"}])
    with running_server(tmp, "--backend", "scripted", "--script", str(script), "--api-key", KEY,
                        "--api-key", OTHER_KEY, "--store", "memory") as server:
        yield server


def _refused_status(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    with pytest.raises(InvalidStatus) as info:
        connect(url, additional_headers=headers, open_timeout=10)
    return info.value.response.status_code, info.value.response.body or b""


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + KEY}, {"Authorization": "Bearer "}],
    ids=["missing", "wrong", "not-bearer", "empty"],
)
def test_bad_key_gets_401_before_the_upgrade(keyed_server: RunningServer, headers: dict[str, str]) -> None:
    status, body = _refused_status(keyed_server.ws_url, headers)
    assert status == 401
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] in ("missing_api_key", "invalid_api_key")


def test_sdk_with_a_wrong_key_is_refused(keyed_server: RunningServer) -> None:
    client = OpenAI(base_url=keyed_server.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(InvalidStatus) as info, client.responses.connect(max_retries=0):
        pass
    assert info.value.response.status_code == 401


def test_right_key_no_subprotocol_and_deflate(keyed_server: RunningServer) -> None:
    # As a client behind a reverse proxy: for a direct loopback client the server declines compression
    # (tests/test_ws_compression.py has every case).
    proxied = {"X-Forwarded-For": "198.51.100.7"}
    with connect(keyed_server.ws_url, additional_headers={"Authorization": f"Bearer {KEY}", **BETA, **proxied},
                 open_timeout=10) as ws:
        assert ws.subprotocol is None
        assert ws.response.status_code == 101
        assert "Sec-WebSocket-Protocol" not in ws.response.headers
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert "permessage-deflate" in extensions
        assert [type(ext).__name__ for ext in ws.protocol.extensions] == ["PerMessageDeflate"]
        ws.send(json.dumps(create_event(input="hi " * 500)))  # compressible both ways
        assert output_text(completed(collect(ws))) == "hello there"


def test_without_compression_still_works(keyed_server: RunningServer) -> None:
    with connect(keyed_server.ws_url, additional_headers={"Authorization": f"Bearer {KEY}"}, compression=None,
                 open_timeout=10) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send(json.dumps(create_event(input="hi")))
        assert completed(collect(ws))["status"] == "completed"


def test_sdk_sync_with_beta_header(keyed_server: RunningServer) -> None:
    client = OpenAI(base_url=keyed_server.base_url, api_key=KEY)
    with client.responses.connect(extra_headers=BETA) as conn:
        assert recv_created_then_text(conn) == "hello there"


def recv_created_then_text(conn: Any) -> str:
    conn.response.create(model="m", input="hi")
    first = recv(conn)
    assert first["type"] == "response.created"
    events = [first, *collect(conn)]
    return output_text(completed(events))


async def test_sdk_async_with_beta_header_and_query(keyed_server: RunningServer) -> None:
    client = AsyncOpenAI(base_url=keyed_server.base_url, api_key=KEY)
    async with client.responses.connect(extra_headers=BETA, extra_query={"unknown": "1"}) as conn:
        await conn.response.create(model="m", input="hi")
        assert output_text(completed(await acollect(conn))) == "hello there"


async def test_a_stored_chain_hydrates_only_for_its_owner(keyed_server: RunningServer) -> None:
    owner = AsyncOpenAI(base_url=keyed_server.base_url, api_key=KEY)
    other = AsyncOpenAI(base_url=keyed_server.base_url, api_key=OTHER_KEY)
    async with owner.responses.connect() as conn:
        await conn.response.create(model="m", input="mine", store=True)
        stored = completed(await acollect(conn))
    async with other.responses.connect() as conn:
        await conn.response.create(model="m", input="theirs", previous_response_id=stored["id"])
        assert_ws_error((await acollect(conn))[0], "previous_response_not_found", "previous_response_id")
    async with owner.responses.connect() as conn:
        await conn.response.create(model="m", input="mine again", previous_response_id=stored["id"])
        assert completed(await acollect(conn))["previous_response_id"] == stored["id"]


def test_no_websocket_flag_answers_426(tmp_path: Path) -> None:
    script = write_script(tmp_path, [{"text": "over http"}])
    with running_server(tmp_path, "--backend", "scripted", "--script", str(script), "--store", "memory",
                        "--no-websocket") as server:
        status, body = _refused_status(server.ws_url, {})
        assert status == 426
        assert json.loads(body)["error"]["message"]
        # HTTP keeps working, so a client like Codex can fall back to it.
        reply = httpx.post(server.base_url + "/responses", json={"model": "m", "input": "hi"}, timeout=10)
        assert reply.status_code == 200 and reply.json()["output"][0]["content"][0]["text"] == "over http"


def test_plain_get_on_the_endpoint_is_426(keyed_server: RunningServer) -> None:
    reply = httpx.get(keyed_server.base_url + "/responses", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    assert reply.status_code == 426
