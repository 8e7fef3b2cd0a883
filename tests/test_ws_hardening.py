"""Hostile input over WebSocket mode (issue 10): the creates that once got a bare `server_error` (or
ran, then failed to be written) are refused with a 400 error event naming the `param`, a compaction
bomb with a 413, and the socket serves the next create after each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tether.api.nesting import MAX_JSON_DEPTH

from .fuzz_support import Frame, exchange_frame
from .hostile_inputs import BAD_BLOBS, DEEP, UNHASHABLE, bomb, deep_array
from .support import RunningServer, serve_script
from .ws_support import assert_ws_error, collect, completed, output_text, recv


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve_script(tmp_path_factory.mktemp("ws-hardening"), [{"text": "fine"}]) as running:
        yield running


@pytest.fixture(scope="module")
def sock(server: RunningServer) -> Iterator[ClientConnection]:
    with connect(server.ws_url, max_size=None) as connection:
        yield connection


def assert_usable(sock: ClientConnection) -> None:
    sock.send(json.dumps({"type": "response.create", "model": "m", "input": "still there?", "store": False}))
    assert output_text(completed(collect(sock))) == "fine"


def create_text(fields: str) -> str:
    return '{"type": "response.create", "model": "m", "store": false, ' + fields + "}"


@pytest.mark.parametrize(("fields", "param"), UNHASHABLE)
def test_unhashable_values_are_a_400_event(sock: ClientConnection, fields: dict[str, Any], param: str) -> None:
    sock.send(json.dumps({"type": "response.create", "model": "m", "input": "hi", "store": False, **fields}))
    assert_ws_error(recv(sock), None, param)
    assert_usable(sock)


@pytest.mark.parametrize(("field", "param"), DEEP)
def test_nesting_past_the_limit_is_a_400_event(sock: ClientConnection, field: str, param: str) -> None:
    sock.send(create_text(field))
    event = recv(sock)
    assert_ws_error(event, None, param)
    assert f"{MAX_JSON_DEPTH} levels" in event["error"]["message"]
    assert_usable(sock)


def test_deep_opaque_item_is_refused_before_the_turn(sock: ClientConnection) -> None:
    """It once ran the model, failed to write the terminal event, and stayed in memory unstored."""
    sock.send(create_text('"input": [{"type": "web_search_call", "action": ' + deep_array(300) + "}]"))
    event = recv(sock)
    assert_ws_error(event, None, "input[0]")
    assert_usable(sock)


@pytest.mark.parametrize("content", BAD_BLOBS)
def test_bad_compaction_blob_is_a_400_event(sock: ClientConnection, content: str) -> None:
    item = {"type": "compaction", "encrypted_content": content}
    sock.send(json.dumps({"type": "response.create", "model": "m", "store": False, "input": [item]}))
    assert_ws_error(recv(sock), None, "input[0].encrypted_content")
    assert_usable(sock)


def test_compaction_bomb_is_a_413_event(sock: ClientConnection) -> None:
    item = {"type": "compaction", "encrypted_content": bomb()}
    sock.send(json.dumps({"type": "response.create", "model": "m", "store": False, "input": [item]}))
    assert_ws_error(recv(sock), "request_too_large", "input[0].encrypted_content", status=413)
    assert_usable(sock)


@pytest.mark.parametrize(
    "text",
    [
        deep_array(1030),  # deeper than orjson reads at all
        '{"type": ' + deep_array(1000) + "}",  # an unknown type that cannot be repr()'d
        '{"type": "response.steer", "input": ' + deep_array(300) + "}",
        '{"type": "response.create", "model": "m", "stream_id": ' + deep_array(300) + "}",
        '{"type": "response.processed", "response_id": ' + deep_array(300) + "}",
    ],
)
def test_deep_frames_of_any_kind_leave_the_socket_usable(server: RunningServer, text: str) -> None:
    """Whatever the frame's kind, nothing deeper than the limit is read further or echoed back."""
    is_create = text.startswith('{"type": "response.create"')
    with connect(server.ws_url, max_size=None) as fresh:  # its own socket: a failure here spoils no other case
        assert exchange_frame(fresh, Frame(text, is_create)).problems == []
        assert_usable(fresh)
