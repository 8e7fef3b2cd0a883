"""What Codex 0.171 reads from tether's WebSocket mode besides the Responses events: the message-size limit
on the 101, and per-turn `client_metadata` answered with a `response.metadata` turn state.

The Codex CLI test (`test_codex_cli.py`) sees the same from the real client; these pin the details with
raw frames: the announced limit is the enforced one, the turn state is returned only to Codex turns.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect

from tether.api.client_metadata import TURN_METADATA_KEY, TURN_STATE_KEY, parse_client_metadata
from tether.api.errors import APIError
from tether.server.ws_handshake import MAX_MESSAGE_BYTES_HEADER

from .support import RunningServer, ScriptedServer, validate_ws_event
from .ws_support import assert_ws_error, collect, completed, create_event

LIMIT = 64 * 1024
TURN_ID = "01a2312d-7ef5-7003-a9e9-1e580ff39f3a"


def codex_metadata(turn_id: str, kind: str = "turn", **extra: str) -> dict[str, str]:
    """`client_metadata` as Codex 0.171 sends it: the turn blob plus flat copies of its small fields."""
    blob = {"session_id": "sess-1", "thread_id": "sess-1", "turn_id": turn_id, "window_id": "sess-1:0",
            "request_kind": kind, "model": "tether"}
    return {TURN_METADATA_KEY: json.dumps(blob), "turn_id": turn_id, "session_id": "sess-1",
            "thread_id": "sess-1", "x-codex-window-id": "sess-1:0", **extra}


SERVER = ScriptedServer([{"text": "one"}, {"text": "two"}, {"text": "three"}], "--max-body-bytes", str(LIMIT))


def raw_events(conn: Any, terminals: int = 1) -> list[dict[str, Any]]:
    """Events up to the terminal one, `response.metadata` (Codex's, not in the SDK union) included."""
    events: list[dict[str, Any]] = []
    while True:
        event = json.loads(conn.recv(timeout=30))
        if event["type"] != "response.metadata":
            validate_ws_event(event)
        events.append(event)
        if event["type"] in ("response.completed", "response.failed", "response.incomplete", "error"):
            terminals -= 1
            if terminals == 0:
                return events


# -- the 101 ---------------------------------------------------------------------------------------


def test_the_101_announces_the_enforced_message_limit(server: RunningServer) -> None:
    with connect(server.ws_url, compression=None, max_size=None) as conn:
        assert conn.response.headers[MAX_MESSAGE_BYTES_HEADER] == str(LIMIT)
        # A frame right under the limit is served...
        padding = "x" * (LIMIT - 1024)
        conn.send(json.dumps(create_event(input=padding, store=False)))
        assert len(json.dumps(create_event(input=padding, store=False))) < LIMIT
        assert completed(collect(conn))["status"] == "completed"
    # ...one over it closes the socket with 1009 (message too big), as the header warned.
    with connect(server.ws_url, compression=None, max_size=None) as conn:
        conn.send(json.dumps(create_event(input="x" * LIMIT, store=False)))
        with pytest.raises(ConnectionClosedError) as closed:
            conn.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


# -- client_metadata and response.metadata ---------------------------------------------------------


def test_a_codex_turn_gets_its_turn_state_before_the_response(server: RunningServer) -> None:
    with connect(server.ws_url) as conn:
        conn.send(json.dumps(create_event(input="go", store=False, client_metadata=codex_metadata(TURN_ID))))
        first = raw_events(conn)
        assert [e["type"] for e in first[:2]] == ["response.metadata", "response.created"]
        announced = first[0]
        assert set(announced) == {"type", "headers"}  # no sequence_number: the response's own start at 0
        state = announced["headers"][TURN_STATE_KEY]
        assert isinstance(state, str) and state
        assert first[1]["sequence_number"] == 0
        # A follow-up of the same turn replays the state: it is kept (first value wins, as in Codex).
        conn.send(json.dumps(create_event(
            input="more", store=False, previous_response_id=completed(first)["id"],
            client_metadata=codex_metadata(TURN_ID, **{TURN_STATE_KEY: state}))))
        follow = raw_events(conn)
        assert follow[0] == announced


def test_no_response_metadata_without_a_codex_turn(server: RunningServer) -> None:
    with connect(server.ws_url) as conn:
        # Codex's prewarm belongs to no turn yet (empty turn id): no turn state.
        conn.send(json.dumps(create_event(input=[], store=False, generate=False,
                                          client_metadata=codex_metadata("", kind="prewarm"))))
        assert [e["type"] for e in raw_events(conn)] == ["response.created", "response.completed"]
        # Other clients' metadata, or none: the SDKs do not know the event, so it is never sent.
        for metadata in ({"app": "mine"}, None):
            conn.send(json.dumps(create_event(input="hi", store=False, client_metadata=metadata)))
            events = raw_events(conn)
            assert not [e for e in events if e["type"] == "response.metadata"]
            assert events[-1]["type"] == "response.completed"


@pytest.mark.parametrize(("metadata", "param"), [
    ("a string", "client_metadata"),
    ({"turn_id": 7}, "client_metadata.turn_id"),
])
def test_bad_client_metadata_is_an_error_event(server: RunningServer, metadata: Any, param: str) -> None:
    with connect(server.ws_url) as conn:
        conn.send(json.dumps(create_event(input="hi", client_metadata=metadata)))
        [event] = collect(conn)
        assert_ws_error(event, None, param)
        conn.send(json.dumps(create_event(input="still open", store=False)))
        assert completed(collect(conn))["status"] == "completed"


# -- the parser on its own -------------------------------------------------------------------------


def test_parse_reads_the_flat_copies_first_and_the_blob_for_the_rest() -> None:
    metadata = parse_client_metadata(codex_metadata(TURN_ID))
    assert (metadata.turn_id, metadata.request_kind, metadata.session_id, metadata.window_id) == (
        TURN_ID, "turn", "sess-1", "sess-1:0")
    assert metadata.codex_turn and metadata.turn_state is None
    assert f"turn={TURN_ID}" in metadata.summary() and "kind=turn" in metadata.summary()
    # The API may drop a long blob's value, or cut it: the flat turn id still names the turn.
    cut = parse_client_metadata({TURN_METADATA_KEY: '{"turn_id": "tu', "turn_id": TURN_ID})
    assert cut.turn_id == TURN_ID and cut.request_kind is None
    only_blob = parse_client_metadata({TURN_METADATA_KEY: json.dumps({"turn_id": "t-9", "request_kind": "turn"})})
    assert only_blob.turn_id == "t-9" and only_blob.codex_turn
    assert parse_client_metadata(None).summary() == "no client metadata"
    with pytest.raises(APIError) as error:
        parse_client_metadata(["not", "an", "object"])
    assert error.value.param == "client_metadata" and error.value.status == 400
