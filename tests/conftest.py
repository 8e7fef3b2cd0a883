from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from .pg_support import postgres  # noqa: F401 - the session's PostgreSQL server, for any test that asks
from .support import RunningServer, running_server, write_script

AGENT_TURNS = [
    {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
    {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}},
                    {"name": "get_time", "arguments": {"tz": "CET"}}]},
    {"text": "Paris is sunny and Rome is warm."},
]


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

