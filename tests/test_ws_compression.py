"""WebSocket compression: permessage-deflate negotiated with the SDK and raw clients, declined when the
client offers none, declined by the server with `--ws-compression off`, and by default (`auto`) declined
for a client on this machine but accepted for one behind a proxy; compressed or not, every event arrives
whole. With deflate, the big lifecycle events travel compressed (their echo spliced in from the server's
cache) and small deltas as they are."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.sync.client import ClientConnection, connect

from tether.server.ws_compression import FLUSH_MARKER, DeflateSettings, EchoCache, MessageCompressor
from tether.server.ws_protocol import direct_loopback

from .support import RunningServer, running_server, write_script
from .ws_support import call_outputs, collect, completed, create_event, output_text

TURNS = [
    {"text": "Reading the file.", "tool_calls": [{"name": "read_file", "arguments": {"path": "src/app.py"}}]},
    {"text": "The test passes now."},
]
# An agent's request: instructions and tool definitions far larger than one delta, as Codex sends them.
INSTRUCTIONS = "You are a coding agent working in a repository. Follow the user's instructions. " * 40
TOOLS = [
    {"type": "function", "name": name, "description": f"{name}: one of the agent's tools. " * 8,
     "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}
    for name in ("read_file", "write_file", "list_dir", "run_tests", "apply_patch")
]
LIFECYCLE = ("response.created", "response.in_progress", "response.completed")


def _serve(tmp_path: Path, *flags: str) -> Iterator[RunningServer]:
    script = write_script(tmp_path, TURNS)
    with running_server(tmp_path, "--backend", "scripted", "--script", str(script), "--store", "memory",
                        *flags) as server:
        yield server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    yield from _serve(tmp_path)


@pytest.fixture
def server_deflate(tmp_path: Path) -> Iterator[RunningServer]:
    yield from _serve(tmp_path, "--ws-compression", "deflate")


@pytest.fixture
def server_off(tmp_path: Path) -> Iterator[RunningServer]:
    yield from _serve(tmp_path, "--ws-compression", "off")


PROXIED = {"X-Forwarded-For": "198.51.100.7"}  # what a reverse proxy in front of tether adds
SDK_DEFLATE = {"max_size": 64 * 1024 * 1024}


def negotiated(conn: ClientConnection) -> str:
    return str(conn.response.headers.get("Sec-WebSocket-Extensions", ""))


def record_frames(conn: ClientConnection) -> list[tuple[bool, int]]:
    """(compressed, payload bytes on the wire) of every data frame the client decodes from now on."""
    seen: list[tuple[bool, int]] = []
    for extension in conn.protocol.extensions:
        decode = extension.decode

        def recording(frame: Any, *, max_size: int | None = None, decode: Any = decode) -> Any:
            seen.append((frame.rsv1, len(frame.data)))
            return decode(frame, max_size=max_size)

        extension.decode = recording  # type: ignore[method-assign]
    return seen


def agent_rollout(conn: Any) -> list[dict[str, Any]]:
    """Two turns of an agent loop (a tool call, then the answer); every event validated; the final responses."""
    body = {"instructions": INSTRUCTIONS, "tools": TOOLS, "store": False}
    events = collect(_sent(conn, create_event(input="Fix the failing test.", **body)))
    first = completed(events)
    assert [item["type"] for item in first["output"]] == ["message", "function_call"]
    events = collect(_sent(conn, create_event(previous_response_id=first["id"], input=call_outputs(first), **body)))
    second = completed(events)
    for response in (first, second):
        assert response["instructions"] == INSTRUCTIONS
        # every field sent comes back (the server adds the defaults, such as `strict`)
        echoed = [{key: tool[key] for key in sent} for tool, sent in zip(response["tools"], TOOLS, strict=True)]
        assert echoed == TOOLS
    assert output_text(second) == "The test passes now."
    return [first, second]


def _sent(conn: Any, event: dict[str, Any]) -> Any:
    """Sends `event` through an SDK connection (which takes the event itself) or a raw one (its JSON)."""
    conn.send(event if hasattr(conn, "parse_event") else json.dumps(event))
    return conn


def test_raw_client_negotiates_deflate_and_events_round_trip(server_deflate: RunningServer) -> None:
    with connect(server_deflate.ws_url, open_timeout=10) as conn:  # websockets offers permessage-deflate by default
        assert negotiated(conn).startswith("permessage-deflate")
        assert [type(ext).__name__ for ext in conn.protocol.extensions] == ["PerMessageDeflate"]
        frames = record_frames(conn)
        agent_rollout(conn)
    compressed = [size for flag, size in frames if flag]
    plain = [size for flag, size in frames if not flag]
    # Both turns' created, in_progress and completed carry the ~5 KB echo: compressed, and much smaller.
    assert len(compressed) >= 2 * len(LIFECYCLE)
    assert max(compressed) < len(INSTRUCTIONS)
    # The deltas and other small events go uncompressed.
    assert plain and max(plain) < DeflateSettings().min_size


def test_client_asking_for_a_small_window_gets_it(server_deflate: RunningServer) -> None:
    offer = ClientPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=True)
    with connect(server_deflate.ws_url, extensions=[offer], compression=None, open_timeout=10) as conn:
        assert "server_max_window_bits=10" in negotiated(conn)
        frames = record_frames(conn)
        agent_rollout(conn)  # a back-reference past the 1 KiB window would fail to decode
    assert any(flag for flag, _ in frames)


def test_sdk_connect_negotiates_deflate_when_given_a_size_limit(server_deflate: RunningServer) -> None:
    # openai's SDK leaves compression off unless max_size bounds what a message may inflate to.
    client = OpenAI(base_url=server_deflate.base_url, api_key="unused")
    with client.responses.connect(websocket_connection_options=SDK_DEFLATE) as conn:
        assert negotiated(conn._connection).startswith("permessage-deflate")
        first, second = agent_rollout(conn)
    assert first["id"] != second["id"]


def test_sdk_connect_default_offers_none_and_gets_none(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect() as conn:
        assert negotiated(conn._connection) == ""
        agent_rollout(conn)


def test_raw_client_offering_none_gets_none(server_deflate: RunningServer) -> None:
    with connect(server_deflate.ws_url, compression=None, open_timeout=10) as conn:
        assert negotiated(conn) == ""
        assert conn.protocol.extensions == []
        agent_rollout(conn)


def test_auto_declines_a_client_on_this_machine_and_accepts_one_behind_a_proxy(server: RunningServer) -> None:
    with connect(server.ws_url, compression="deflate", open_timeout=10) as conn:
        assert negotiated(conn) == ""  # loopback: nothing to save, CPU to spend at both ends
        agent_rollout(conn)
    for forwarded in (PROXIED, {"Forwarded": "for=198.51.100.7;proto=https"}):
        with connect(server.ws_url, additional_headers=forwarded, open_timeout=10) as conn:
            assert negotiated(conn).startswith("permessage-deflate")
            frames = record_frames(conn)
            agent_rollout(conn)
        assert any(flag for flag, _ in frames)
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect(extra_headers=PROXIED, websocket_connection_options=SDK_DEFLATE) as sdk:
        assert negotiated(sdk._connection).startswith("permessage-deflate")
        agent_rollout(sdk)


def test_server_flag_off_declines_what_the_client_offers(server_off: RunningServer) -> None:
    with connect(server_off.ws_url, compression="deflate", additional_headers=PROXIED, open_timeout=10) as conn:
        assert negotiated(conn) == ""
        assert conn.protocol.extensions == []
        agent_rollout(conn)
    client = OpenAI(base_url=server_off.base_url, api_key="unused")
    with client.responses.connect(extra_headers=PROXIED, websocket_connection_options=SDK_DEFLATE) as sdk:
        assert negotiated(sdk._connection) == ""
        agent_rollout(sdk)


@pytest.mark.parametrize(("peer", "headers", "declined"), [
    (("127.0.0.1", 5000), {}, True),
    (("127.8.9.10", 5000), {}, True),
    (("::1", 5000), {}, True),
    (("::ffff:127.0.0.1", 5000), {}, True),
    (("127.0.0.1", 5000), {"X-Real-IP": "198.51.100.7"}, False),
    (("10.1.2.3", 5000), {}, False),
    (("2001:db8::1", 5000), {}, False),
    (None, {}, False),
])
def test_which_peers_auto_declines(peer: tuple[str, int] | None, headers: dict[str, str], declined: bool) -> None:
    assert direct_loopback(peer, Headers(headers)) is declined


def test_spliced_messages_decode_with_a_context_taking_over_decoder() -> None:
    """What a client's decoder does (one inflater for the whole connection): a message with a kept echo
    spliced in, between other messages, decodes to exactly the bytes framed."""
    compressor = MessageCompressor(DeflateSettings(), 15, EchoCache())
    echo = json.dumps({"instructions": INSTRUCTIONS, "tools": TOOLS}).encode()[1:-1]
    text = b'"' + b"the answer, at length " * 100 + b'"'  # larger than min_size: deflated, not stored
    messages = [b'{"type":"response.created","response":{"id":"resp_1",' + echo + b'},"sequence_number":0}',
                b'{"type":"response.output_text.done","text":' + text + b'}',
                b'{"type":"response.completed","response":{"output":[' + text + b'],' + echo + b'}}',
                b'{"type":"x","response":{' + echo + b',"text":' + text + b'}}']
    decoder = zlib.decompressobj(-15)
    for message in messages:
        start = message.find(echo)
        wire = compressor.compress(message, start, echo) if start >= 0 else compressor.compress(message)
        assert not wire.endswith(FLUSH_MARKER)
        assert decoder.decompress(wire + FLUSH_MARKER) == message
    assert len(compressor.echoes) == 1  # compressed once, used three times


def test_uncompressed_frames_of_both_long_length_forms_round_trip(server_off: RunningServer) -> None:
    """tether writes uncompressed frames itself: the client's own parser must read the 16-bit and the
    64-bit length forms, here the deltas and a > 64 KiB echo (no event is short enough for the 7-bit
    form, which tests/unit/test_text_frame_header.py checks against websockets' serializer)."""
    long_instructions = "Read the code before changing it. " * 2500  # ~85 KB in every lifecycle event
    with connect(server_off.ws_url, compression=None, max_size=None, open_timeout=10) as conn:
        conn.send(json.dumps(create_event(input="Fix the failing test.", instructions=long_instructions,
                                          store=False)))
        raw = []
        while not raw or json.loads(raw[-1])["type"] not in ("response.completed", "response.failed", "error"):
            raw.append(conn.recv(timeout=30))
    sizes = [len(frame.encode()) for frame in raw]
    assert any(126 <= size < 65536 for size in sizes) and max(sizes) >= 65536
    events = [json.loads(frame) for frame in raw]
    assert events[-1]["type"] == "response.completed"
    assert events[0]["response"]["instructions"] == events[-1]["response"]["instructions"] == long_instructions
