"""Codex CLI (from npm) as a real WebSocket-mode client of tether: warm-up, a tool call, its output, an answer.

Codex (the pinned version) is installed once into `.test-cache/codex-<version>` under the repository root
(ignored by git). The server runs the scripted backend: its first model turn calls `exec_command` to create a
file, its second answers in text.
Codex talks to tether directly; an ASGI recorder, loaded into the server process through `sitecustomize`,
writes every upgrade, HTTP request and WebSocket text frame to a JSONL file so the test can read the
conversation as the server saw it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tether.api.client_metadata import TURN_METADATA_KEY, TURN_STATE_KEY, parse_client_metadata
from tether.server.config import ServerConfig
from tether.server.ws_handshake import MAX_MESSAGE_BYTES_HEADER, max_message_bytes
from tether.server.ws_protocol import DIRECT_SEND

from .readme_codex import readme_codex_config
from .support import RunningServer, running_server, validate_ws_event, write_script
from .ws_support import metric

pytestmark = pytest.mark.codex

CODEX_VERSION = "0.171.0"
REPO = Path(__file__).resolve().parent.parent
CODEX_DIR = REPO / ".test-cache" / f"codex-{CODEX_VERSION}"
CODEX_BIN = CODEX_DIR / "node_modules" / ".bin" / "codex"
API_KEY = "sk-tether-codex"
COMMAND = "echo hi > created_by_codex.txt"
ANSWER = "I created created_by_codex.txt for you."
TURNS = [
    {"tool_calls": [{"name": "exec_command", "arguments": {"cmd": COMMAND}}]},
    {"text": ANSWER},
]

# Test-only settings put before the README's block: never ask, no sandbox (the test's own temp dir).
TEST_ONLY_SETTINGS = """\
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false
"""


def codex_config(base_url: str) -> str:
    """The README's documented config, pointed at the test server."""
    documented = readme_codex_config()
    assert 'base_url = "http://127.0.0.1:8000/v1"' in documented
    return TEST_ONLY_SETTINGS + documented.replace("http://127.0.0.1:8000/v1", base_url)


# Loaded by the server's interpreter (PYTHONPATH) only when TETHER_TEST_FRAME_LOG is set: wraps the ASGI app
# that uvicorn serves and records what crosses it. Nothing of tether itself is patched.
RECORDER = '''\
import json
import os

_LOG = os.environ.get("TETHER_TEST_FRAME_LOG")

if _LOG:
    import uvicorn

    def _record(kind, **fields):
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps({"kind": kind, **fields}) + "\\n")

    class _FrameRecorder:
        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http":
                _record("http", method=scope["method"], path=scope["path"])
            if scope["type"] != "websocket":
                return await self.app(scope, receive, send)
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            _record("upgrade", path=scope["path"], headers=headers)
            # tether writes its events' frames through the protocol's direct writer, past the ASGI send:
            # record those too, and still let them take that path.
            extensions = scope.get("extensions") or {}
            direct = extensions.get(DIRECT_SEND_KEY)
            if direct is not None:
                def recording_frame(payload, echo_start=-1, echo=None):
                    _record("out", text=payload.decode())
                    direct(payload, echo_start, echo)

                scope = {**scope, "extensions": {**extensions, DIRECT_SEND_KEY: recording_frame}}

            async def recording_receive():
                message = await receive()
                if message.get("text") is not None:
                    _record("in", text=message["text"])
                return message

            async def recording_send(message):
                if message["type"] == "websocket.accept":
                    _record("accept", headers={k.decode("latin-1"): v.decode("latin-1")
                                               for k, v in message.get("headers") or []})
                if message["type"] == "websocket.send" and message.get("text") is not None:
                    _record("out", text=message["text"])
                await send(message)

            return await self.app(scope, recording_receive, recording_send)

    _init = uvicorn.Config.__init__

    def _recording_init(self, app, *args, **kwargs):
        _init(self, _FrameRecorder(app), *args, **kwargs)

    uvicorn.Config.__init__ = _recording_init
'''.replace("DIRECT_SEND_KEY", repr(DIRECT_SEND))


@pytest.fixture(scope="module")
def codex() -> Path:
    """Codex from npm, installed on first use (no lock file: the version is pinned here)."""
    if CODEX_BIN.exists():
        return CODEX_BIN
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the Codex CLI test needs it to install @openai/codex")
    CODEX_DIR.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [npm, "install", "--prefix", str(CODEX_DIR), "--no-package-lock", "--no-audit", "--no-fund",
         f"@openai/codex@{CODEX_VERSION}"],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0 and CODEX_BIN.exists(), f"npm install failed:\n{result.stdout}\n{result.stderr}"
    return CODEX_BIN


@pytest.fixture
def recorded_server(tmp_path: Path) -> Any:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(RECORDER)
    frames = tmp_path / "frames.jsonl"
    pythonpath = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    script = write_script(tmp_path, TURNS)
    with running_server(tmp_path, "--backend", "scripted", "--script", str(script), "--store", "memory",
                        "--api-key", API_KEY,
                        env={"PYTHONPATH": pythonpath, "TETHER_TEST_FRAME_LOG": str(frames)}) as server:
        yield server, frames


def read_frames(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_codex_exec_runs_a_tool_over_websocket_mode(codex: Path, recorded_server: Any, tmp_path: Path) -> None:
    server: RunningServer
    server, frames_path = recorded_server
    home = tmp_path / "codex_home"
    home.mkdir()
    (home / "config.toml").write_text(codex_config(server.base_url))
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "CODEX_HOME": str(home), "TETHER_API_KEY": API_KEY, "NO_COLOR": "1"}
    result = subprocess.run(
        [str(codex), "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "--ephemeral",
         "--json", "Create the file created_by_codex.txt please."],
        cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180,
    )
    report = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\nserver log:\n{server.log()}"
    assert result.returncode == 0, report
    assert (work / "created_by_codex.txt").read_text() == "hi\n", report
    messages = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    agent = [m["item"]["text"] for m in messages if m.get("item", {}).get("type") == "agent_message"]
    assert agent[-1] == ANSWER, report
    commands = [m["item"] for m in messages
                if m["type"] == "item.completed" and m["item"]["type"] == "command_execution"]
    assert [c["exit_code"] for c in commands] == [0], report

    # What the server saw: one WebSocket upgrade and no HTTP Responses calls.
    frames = read_frames(frames_path)
    upgrades = [f for f in frames if f["kind"] == "upgrade"]
    assert len(upgrades) == 1 and upgrades[0]["path"] == "/v1/responses", frames
    assert upgrades[0]["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert "responses_websockets=" in upgrades[0]["headers"].get("openai-beta", "")
    assert not [f for f in frames if f["kind"] == "http" and f["path"].startswith("/v1/responses")], frames
    # The 101 announces the message-size limit the server enforces (tether serve's default).
    [accept] = [f for f in frames if f["kind"] == "accept"]
    assert accept["headers"][MAX_MESSAGE_BYTES_HEADER] == str(max_message_bytes(ServerConfig())), accept
    creates = [json.loads(f["text"]) for f in frames if f["kind"] == "in"]
    events = [json.loads(f["text"]) for f in frames if f["kind"] == "out"]
    # `response.metadata` is Codex's extension (not in the SDK's event union); everything else is strict.
    turn_states = [e for e in events if e["type"] == "response.metadata"]
    for event in events:
        if event["type"] != "response.metadata":
            validate_ws_event(event)
    assert all(c["type"] == "response.create" for c in creates), creates
    assert not [e for e in events if e["type"] == "error"], events
    finished = [e["response"] for e in events if e["type"] == "response.completed"]
    assert len(finished) == len(creates) >= 3

    # 1. The warm-up: generate:false, answered with created + completed and no output.
    warm_up = creates[0]
    assert warm_up.get("generate") is False and "previous_response_id" not in warm_up
    assert finished[0]["output"] == []
    # 2. The turn continues from the warm-up with only the new items; the server answers with the tool call.
    assert creates[1]["previous_response_id"] == finished[0]["id"]
    assert creates[1].get("generate", True) is True
    [call] = [item for item in finished[1]["output"] if item["type"] == "function_call"]
    assert call["name"] == "exec_command" and json.loads(call["arguments"]) == {"cmd": COMMAND}
    # 3. The final turn brings the command's output back, continuing from the tool-call turn.
    last = creates[-1]
    assert last["previous_response_id"] == finished[-2]["id"]
    outputs = [item for item in last["input"] if item.get("type") == "function_call_output"]
    assert [o["call_id"] for o in outputs] == [call["call_id"]]
    assert "exited with code 0" in str(outputs[0]["output"])
    assert not [item for item in last["input"] if item.get("type") == "function_call"]  # not re-sent
    assert finished[-1]["output"][-1]["content"][0]["text"] == ANSWER

    # Per-turn metadata comes in each create's body: the warm-up belongs to no turn yet, the rest to one turn.
    blobs = [json.loads(c["client_metadata"][TURN_METADATA_KEY]) for c in creates]
    assert blobs[0]["request_kind"] == "prewarm" and creates[0]["client_metadata"]["turn_id"] == ""
    turn_id = creates[1]["client_metadata"]["turn_id"]
    assert turn_id and all(c["client_metadata"]["turn_id"] == turn_id for c in creates[1:])
    assert all(blob["request_kind"] == "turn" and blob["turn_id"] == turn_id for blob in blobs[1:])
    metadata = [parse_client_metadata(c["client_metadata"]) for c in creates]
    assert [m.turn_id for m in metadata] == [None] + [turn_id] * (len(creates) - 1)
    # tether answers each request of the turn with its turn state, before the response's events; Codex
    # replays the first one on the turn's follow-ups.
    assert len(turn_states) == len(creates) - 1
    for announced in turn_states:
        following = events[events.index(announced) + 1]
        assert following["type"] == "response.created" and "sequence_number" not in announced, events
    state = turn_states[0]["headers"][TURN_STATE_KEY]
    assert TURN_STATE_KEY not in creates[1]["client_metadata"]
    assert all(c["client_metadata"][TURN_STATE_KEY] == state for c in creates[2:])
    assert all(e["headers"][TURN_STATE_KEY] == state for e in turn_states)

    # The incremental turns hit the connection cache; everything went over WebSocket mode.
    assert metric(server, "tether_ws_cache_hits_total", api_key=API_KEY) >= len(creates) - 1
    assert metric(server, "tether_ws_cache_misses_total", api_key=API_KEY) == 0
    assert metric(server, "tether_store_hydrations_total", api_key=API_KEY) == 0
    assert metric(server, "tether_responses_total", api_key=API_KEY, transport="ws") >= 3
    assert metric(server, "tether_responses_total", api_key=API_KEY, transport="http") == 0
    assert finished[-1]["usage"]["input_tokens_details"]["cached_tokens"] > 0
