from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from .fake_upstream import FakeUpstream
from .pg_support import postgres  # noqa: F401 - the session's PostgreSQL server, for any test that asks
from .support import RunningServer, ScriptedServer, running_server, serve_script, write_script

AGENT_TURNS = [
    {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
    {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}},
                    {"name": "get_time", "arguments": {"tz": "CET"}}]},
    {"text": "Paris is sunny and Rome is warm."},
]


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The module's scripted server, as its `SERVER = ScriptedServer(...)` declares it (one fixture
    factory for every module; a module with other needs defines its own `server`)."""
    spec = getattr(request.module, "SERVER", None)
    if not isinstance(spec, ScriptedServer):
        pytest.fail(f"{request.module.__name__} uses `server` but declares no SERVER = ScriptedServer(...)")
    name = request.module.__name__.rsplit(".", 1)[-1]
    with serve_script(tmp_path_factory.mktemp(name), spec.turns, *spec.args, **spec.settings) as running:
        yield running


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    """A loopback OpenAI-compatible upstream that plays what a test scripts (tests/fake_upstream.py)."""
    upstream = FakeUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture
def client(server: RunningServer) -> OpenAI:
    """An SDK client for the module's own `server` fixture."""
    return OpenAI(base_url=server.base_url, api_key="unused")


@pytest.fixture
def scripted_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A scripted server whose script plays two tool-call turns and then a text answer."""
    script = write_script(tmp_path, AGENT_TURNS)
    with running_server(tmp_path, "--backend", "scripted", "--script", str(script)) as server:
        yield server

