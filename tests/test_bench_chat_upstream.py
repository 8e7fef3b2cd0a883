"""The benchmarks' chat-completions upstream, and tether's upstream backend in front of it: a real
end-to-end agent turn loop through both processes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tether.processes import free_port, serving_process

from .support import RunningServer, running_server, validate_ws_event, write_script

TURNS = [
    {"tool_calls": [{"name": "read_file", "arguments": {"path": "a.py"}}]},
    {"text": "All good."},
]


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[str]:
    script = write_script(tmp_path, TURNS, prefill_tokens_per_second=200000)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "tether.bench.chat_upstream", "--port", str(port), "--script", str(script)]
    with serving_process(command, tmp_path / "upstream.log", url + "/v1/models"):
        yield url


def test_chat_upstream_streams_tool_calls_and_usage(upstream: str) -> None:
    client = OpenAI(base_url=upstream + "/v1", api_key="unused")
    tools = [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]
    messages = [{"role": "user", "content": "check a.py"}]
    stream = client.chat.completions.create(model="bench-model", messages=messages, tools=tools, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    calls = [call for chunk in chunks if chunk.choices for call in chunk.choices[0].delta.tool_calls or []]
    assert calls[0].function.name == "read_file"
    arguments = "".join(call.function.arguments or "" for call in calls)
    assert json.loads(arguments) == {"path": "a.py"}
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    # the second model turn (an assistant message is now in the history) plays the text
    messages += [{"role": "assistant", "tool_calls": [{"id": calls[0].id, "type": "function",
                  "function": {"name": "read_file", "arguments": arguments}}]},
                 {"role": "tool", "tool_call_id": calls[0].id, "content": "print(1)"}]
    answer = client.chat.completions.create(model="bench-model", messages=messages, tools=tools)
    assert answer.choices[0].message.content == "All good."
    assert answer.usage is not None and answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens > 0  # the first turn's prefix was seen
    entries = httpx.get(upstream + "/bench/ledger", params={"after": -1}).json()["entries"]
    assert [entry["turn"] for entry in entries] == [0, 1]
    assert all(entry["model_seconds"] > 0 for entry in entries)


def test_tether_upstream_backend_over_websocket(upstream: str, tmp_path: Path) -> None:
    server: RunningServer
    with running_server(tmp_path, "--backend", "upstream", "--upstream-url", upstream, "--store", "memory") as server:
        client = OpenAI(base_url=server.base_url, api_key="unused")
        tools = [{"type": "function", "name": "read_file", "parameters": {"type": "object"}}]
        with client.responses.connect() as conn:
            conn.response.create(model="bench-model", input="check a.py", tools=tools, store=False)
            first = _until_done(conn)
            call = first["output"][0]
            assert call["type"] == "function_call" and call["name"] == "read_file"
            conn.response.create(model="bench-model", tools=tools, store=False, previous_response_id=first["id"],
                                 input=[{"type": "function_call_output", "call_id": call["call_id"],
                                         "output": "print(1)"}])
            second = _until_done(conn)
            assert second["output"][0]["content"][0]["text"] == "All good."
            assert second["usage"]["input_tokens_details"]["cached_tokens"] > 0


def _until_done(conn: object) -> dict[str, object]:
    for event in conn:  # type: ignore[attr-defined]
        data = event.to_dict()
        validate_ws_event(data)
        if data["type"] in ("response.completed", "response.failed", "error"):
            assert data["type"] == "response.completed", data
            return dict(data["response"])
    raise AssertionError("the connection closed before the response completed")


def test_module_runs_as_a_program() -> None:
    result = subprocess.run([sys.executable, "-m", "tether.bench.chat_upstream", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "--script" in result.stdout
