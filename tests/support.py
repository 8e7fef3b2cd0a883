"""Shared test support: start a real tether server on a free loopback port; validate events strictly."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from openai.types.responses import ResponseStreamEvent
from openai.types.responses.responses_server_event import ResponsesServerEvent
from pydantic import BaseModel, TypeAdapter

from tether.api.sse import SSEDecoder
from tether.processes import free_port, stop, wait_serving

SSE_EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WS_EVENTS: TypeAdapter[Any] = TypeAdapter(ResponsesServerEvent)


@dataclass
class RunningServer:
    url: str  # http://127.0.0.1:PORT
    process: subprocess.Popen[str]
    log_path: Path

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/v1/responses"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        stop(self.process)
        return int(self.process.returncode)


def start_server(
    tmp_path: Path,
    *args: str,
    wait_s: float = 60.0,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> RunningServer:
    """`tether serve` in a subprocess on a free port; returns once `/health` answers (a 401 counts).
    `preexec_fn` runs in the child before tether starts (e.g. to set its resource limits)."""
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    full_env = {**os.environ, "TETHER_DATA_DIR": str(tmp_path / "data"), **(env or {})}
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "tether.cli", "serve", "--port", str(port), *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
            env=full_env,
            preexec_fn=preexec_fn,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_serving(process, url + "/health", log_path, wait_s, any_status=True)
    except RuntimeError:
        stop(process)
        raise
    return RunningServer(url, process, log_path)


@contextlib.contextmanager
def running_server(tmp_path: Path, *args: str, **kwargs: Any) -> Iterator[RunningServer]:
    server = start_server(tmp_path, *args, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def write_script(tmp_path: Path, turns: list[dict[str, Any]], **settings: Any) -> Path:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"turns": turns, "tokens_per_second": 5000, "ttft_ms": 1, **settings}))
    return path


# Fields the live API sends on a Response that this SDK's model does not declare (see DESIGN.md:
# strict clients check them). Everything else must be known to the SDK.
LIVE_RESPONSE_FIELDS = frozenset({"billing", "frequency_penalty", "presence_penalty", "store"})


def _no_extras(model: Any, where: str) -> None:
    """Strict: every field the server sent must be one the SDK's model knows."""
    if isinstance(model, BaseModel):
        extra = set(model.model_extra or {})
        if type(model).__name__ == "Response":
            extra -= LIVE_RESPONSE_FIELDS
        if where == "response.output_text.delta":
            extra.discard("obfuscation")  # documented (stream_options.include_obfuscation), absent from the SDK model
        assert not extra, f"{where}: fields unknown to the SDK model {type(model).__name__}: {sorted(extra)}"
        for name in type(model).model_fields:
            _no_extras(getattr(model, name), f"{where}.{name}")
    elif isinstance(model, list):
        for index, entry in enumerate(model):
            _no_extras(entry, f"{where}[{index}]")


def validate_sse_event(event: dict[str, Any]) -> Any:
    model = SSE_EVENTS.validate_python(event)
    _no_extras(model, event["type"])
    return model


def validate_ws_event(event: dict[str, Any]) -> Any:
    model = WS_EVENTS.validate_python(event)
    _no_extras(model, event["type"])
    return model


TEXT_SEQUENCE = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


# One function call's events (deltas folded); parallel calls repeat it with consecutive output indices.
FUNCTION_CALL_EVENTS = [
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
]


def call_sequence(calls: int) -> list[str]:
    """The reference event order of a response made of `calls` function calls (section 2.5.2)."""
    return ["response.created", "response.in_progress", *FUNCTION_CALL_EVENTS * calls, "response.completed"]


def collapse(types: list[str]) -> list[str]:
    """Event types with runs of repeated deltas folded into one, for comparing against the reference."""
    out: list[str] = []
    for kind in types:
        if out and kind == out[-1] and kind.endswith(".delta"):
            continue
        out.append(kind)
    return out


def check_sequence_numbers(events: list[dict[str, Any]]) -> None:
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def check_output_indices(events: list[dict[str, Any]]) -> None:
    """`output_index` is the item's position; deltas refer to the open item; content_index from 0."""
    added: list[str] = []
    for event in events:
        if event["type"] == "response.output_item.added":
            assert event["output_index"] == len(added)
            added.append(event["item"]["id"])
        elif "output_index" in event:
            assert event["output_index"] < len(added)
            if "item_id" in event:
                assert added[event["output_index"]] == event["item_id"]
            if "item" in event:
                assert added[event["output_index"]] == event["item"]["id"]
    final = events[-1]["response"]["output"]
    assert [item["id"] for item in final] == added


# -- HTTP suite helpers ---------------------------------------------------------------------------

ERROR_KEYS = {"message", "type", "param", "code"}
_ANY = object()


class ScriptedServer:
    """A test module's scripted server, declared as `SERVER = ScriptedServer(turns, *cli_args, **script)`:
    the shared `server` fixture (tests/conftest.py) starts it once for the module."""

    def __init__(self, turns: list[dict[str, Any]], *args: str, **settings: Any) -> None:
        self.turns = turns
        self.args = args
        self.settings = settings


@contextlib.contextmanager
def serve_script(
    tmp_path: Path, turns: list[dict[str, Any]], *args: str, **settings: Any
) -> Iterator[RunningServer]:
    """A scripted server playing `turns` (extra CLI `args`, script `settings`); the store is memory unless given."""
    script = write_script(tmp_path, turns, **settings)
    store = () if "--store" in args else ("--store", "memory")
    with running_server(tmp_path, "--backend", "scripted", "--script", str(script), *store, *args) as server:
        yield server


def assert_error(
    response: httpx.Response,
    status: int,
    *,
    param: Any = _ANY,
    code: Any = _ANY,
    type: str = "invalid_request_error",
) -> dict[str, Any]:
    """The response is the API's error envelope, exactly `{"error": {message, type, param, code}}`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_KEYS, error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["type"] == type, error
    if param is not _ANY:
        assert error["param"] == param, error
    if code is not _ANY:
        assert error["code"] == code, error
    return dict(error)


def sse_lines_to_events(lines: Iterator[str]) -> list[dict[str, Any]]:
    """Parse SSE lines (`event: T` / `data: JSON` / blank) into event dicts; the names must match the types."""
    decoder = SSEDecoder()
    events: list[dict[str, Any]] = []
    for line in lines:
        # tether writes exactly these three kinds of line; the decoder would accept more
        assert line == "" or line.startswith(("event: ", "data: ")), line
        sse = decoder.feed_line(line)
        if sse is not None:
            assert sse.data != "[DONE]", "Responses SSE has no [DONE] sentinel"
            event = json.loads(sse.data)
            assert sse.event == event["type"], (sse.event, event["type"])
            events.append(event)
    assert decoder.close() == [], "the stream ended inside an event"
    return events


def post_sse(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """POST a streaming create with raw httpx and return every event, each validated strictly."""
    with httpx.stream("POST", url + "/v1/responses", json={**body, "stream": True}, headers=headers,
                      timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_lines_to_events(response.iter_lines())
    for event in events:
        validate_sse_event(event)
    return events


def validate_response(body: dict[str, Any]) -> Any:
    """A Response object, strictly: the SDK's model parses it and knows every field (bar the live extras)."""
    from openai.types.responses import Response

    model = Response.model_validate(body)
    _no_extras(model, "response")
    return model
