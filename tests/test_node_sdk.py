"""The official openai Node SDK (`ResponsesWS`, from npm) as a WebSocket-mode client of tether.

`tests/node/package.json` pins the SDK; it is installed into `tests/node/node_modules` on first use (no
lock file is written: the versions are pinned there). `tests/node/responses_ws_client.mjs` drives one
socket: a store:false chain with a tool call on the default lane, then two named lanes forked from the
chain, concurrently. It reads each response with the SDK's lane helper, whose `finalResponse()` checks
every completed output item and terminal response, and hands back every event it saw, which is checked
here against the Python SDK's types as well.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .support import RunningServer, ScriptedServer, validate_ws_event

pytestmark = pytest.mark.node

NODE_DIR = Path(__file__).resolve().parent / "node"
CLIENT = NODE_DIR / "responses_ws_client.mjs"
API_KEY = "sk-tether-node"
TURNS = [
    {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
    {"text": "It is sunny in Paris."},
    {"text": "You are welcome."},
    {"text": "a lane's first answer"},
    {"text": "a lane's second answer"},
]


def installed_version(package: str) -> str | None:
    manifest = NODE_DIR / "node_modules" / package / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.exists() else None


@pytest.fixture(scope="module")
def node() -> str:
    """Node.js, with the pinned packages installed (again, when the pins changed)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are needed for the Node SDK test")
    pins: dict[str, str] = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]
    if any(installed_version(name) != version for name, version in pins.items()):
        result = subprocess.run(
            [npm, "install", "--prefix", str(NODE_DIR), "--no-package-lock", "--no-audit", "--no-fund"],
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, f"npm install failed:\n{result.stdout}\n{result.stderr}"
        assert all(installed_version(name) == version for name, version in pins.items())
    return node


SERVER = ScriptedServer(TURNS, "--api-key", API_KEY)


def run_client(node: str, server: RunningServer) -> dict[str, Any]:
    result = subprocess.run([node, str(CLIENT), server.base_url, API_KEY], cwd=NODE_DIR, capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\nserver:\n{server.log()}"
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_node_responses_ws_chain_and_two_lanes(node: str, server: RunningServer) -> None:
    report = run_client(node, server)
    assert report["errors"] == []

    # The store:false chain on the default lane: a tool call, the answer to its output, a follow-up.
    first, second, third = report["chain"]
    assert first["output_types"] == ["function_call"] and first["previous_response_id"] is None
    [call] = first["calls"]
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}
    assert second["previous_response_id"] == first["id"] and second["output_text"] == "It is sunny in Paris."
    assert third["previous_response_id"] == second["id"] and third["output_text"] == "You are welcome."

    # Two lanes forked from the chain's last response, concurrently: each goes on from what it forked.
    lanes = report["lanes"]
    for name in ("alpha", "beta"):
        fork, follow = lanes[name]
        assert fork["previous_response_id"] == third["id"] and fork["output_text"] == "a lane's first answer"
        assert follow["previous_response_id"] == fork["id"] and follow["output_text"] == "a lane's second answer"
    responses = [*report["chain"], *lanes["alpha"], *lanes["beta"]]
    assert all(response["status"] == "completed" for response in responses)
    assert len({response["id"] for response in responses}) == len(responses)

    # Every event the SDK received is one the Python SDK knows too, and each lane's carry their stream_id.
    events = report["events"]
    for event in events:
        validate_ws_event(event)
    lane_of = {event["response"]["id"]: event.get("stream_id") for event in events
               if event["type"] == "response.completed"}
    assert [lane_of[r["id"]] for r in report["chain"]] == [None, None, None]
    assert {lane_of[r["id"]] for r in lanes["alpha"]} == {"alpha"}
    assert {lane_of[r["id"]] for r in lanes["beta"]} == {"beta"}
    assert [e["type"] for e in events].count("response.completed") == len(responses)
