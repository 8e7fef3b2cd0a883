"""An engine pool of two loopback fake upstreams behind one tether server: new conversations spread
over the replicas, every later turn goes back to its replica (WebSocket lane, `previous_response_id`,
`prompt_cache_key`, or the prefix of a full-context request), and a replica that dies or fails its
health check hands its conversations to the other one with the full context."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from .fake_upstream import FakeUpstream, text_reply, usage
from .support import RunningServer, running_server
from .upstream_support import metric, ws_turn

REPLIES = 12  # scripted on each replica; a test never needs more


@pytest.fixture
def replicas() -> Iterator[list[FakeUpstream]]:
    fakes = [FakeUpstream().start(), FakeUpstream().start()]
    for name, fake in zip("AB", fakes, strict=True):
        # Each answers with its own name; A reports a warm prefix cache, B a cold one.
        fake.script(*[text_reply(f"from {name}", use=usage(40, 3, cached=30 if name == "A" else 0))
                      for _ in range(REPLIES)])
    yield fakes
    for fake in fakes:
        fake.stop()


def pool_server(tmp_path: Path, replicas: list[FakeUpstream], *args: str) -> Any:
    urls = [arg for fake in replicas for arg in ("--upstream-url", fake.url)]
    return running_server(tmp_path, "--backend", "upstream", *urls, *args)


@pytest.fixture
def server(tmp_path: Path, replicas: list[FakeUpstream]) -> Iterator[RunningServer]:
    with pool_server(tmp_path, replicas, "--upstream-health-interval", "0.2") as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def served_by(text: str) -> str:
    assert text.startswith("from "), text
    return text.removeprefix("from ")


def gauge(server: RunningServer, name: str, fake: FakeUpstream) -> float:
    return metric(server, f'{name}{{replica="{fake.url}/v1"}}')


def wait_for(condition: Any, what: str) -> None:
    """Poll a condition the health loop makes true (no timing is asserted, only that it happens)."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def assistant(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}


# -- affinity ------------------------------------------------------------------------------------
def test_websocket_conversations_spread_then_stay(client: OpenAI, server: RunningServer,
                                                  replicas: list[FakeUpstream]) -> None:
    homes: dict[str, list[str]] = {"one": [], "two": []}
    with client.responses.connect() as one, client.responses.connect() as two:
        previous: dict[str, str | None] = {"one": None, "two": None}
        for turn in range(3):
            for name, conn in (("one", one), ("two", two)):
                # The same first message on both lanes: still two conversations, spread by load.
                text = "Fix the failing test." if turn == 0 else f"{name} turn {turn}"
                final = ws_turn(conn, model="m", input=text, store=False, previous_response_id=previous[name])[-1]
                assert final.type == "response.completed", final
                homes[name].append(served_by(final.response.output_text))
                previous[name] = final.response.id
    assert sorted([homes["one"][0], homes["two"][0]]) == ["A", "B"]
    for name, served in homes.items():
        assert served == served[:1] * 3, (name, served)  # every turn on the replica of the first
        fake = replicas["AB".index(served[0])]
        assert len(fake.requests) == 3
        assert [m["content"] for m in fake.requests[-1].messages if m["role"] == "user"] == [
            "Fix the failing test.", f"{name} turn 1", f"{name} turn 2"
        ]
    for fake in replicas:
        assert gauge(server, "tether_upstream_conversations", fake) == 1


def test_http_previous_response_id_stays(client: OpenAI, server: RunningServer, replicas: list[FakeUpstream]) -> None:
    first = client.responses.create(model="m", input="Hello", store=True)
    home = served_by(first.output_text)
    other = client.responses.create(model="m", input="Someone else", store=True)
    assert served_by(other.output_text) != home  # the least-loaded replica: the one without a conversation
    previous = first.id
    for turn in range(3):
        answer = client.responses.create(model="m", input=f"More {turn}", previous_response_id=previous, store=True)
        assert served_by(answer.output_text) == home
        previous = answer.id
    fake = replicas["AB".index(home)]
    assert [m["content"] for m in fake.requests[-1].messages] == [
        "Hello", f"from {home}", "More 0", f"from {home}", "More 1", f"from {home}", "More 2"
    ]  # the whole conversation, rebuilt from the store
    for replica in replicas:
        assert gauge(server, "tether_upstream_conversations", replica) == 1


@pytest.mark.parametrize("cache_key", [None, "conversation"])
def test_full_context_requests_stay(client: OpenAI, server: RunningServer, replicas: list[FakeUpstream],
                                    cache_key: str | None) -> None:
    # Two conversations that open alike, as parallel agents on one task do; each request carries the
    # whole conversation (store: false, no previous_response_id), with or without a prompt_cache_key.
    histories = [[user("Fix the failing test.")], [user("Fix the failing test.")]]
    homes: list[str] = []
    for turn in range(4):
        for index, history in enumerate(histories):
            key = {"prompt_cache_key": f"{cache_key}-{index}"} if cache_key else {}
            if turn:
                history.append(user(f"step {turn} of {index}"))
            answer = client.responses.create(model="m", input=history, store=False, **key)
            if turn == 0:
                homes.append(served_by(answer.output_text))
            assert served_by(answer.output_text) == homes[index], (turn, index)
            history.append(assistant(answer.output_text))
    assert sorted(homes) == ["A", "B"]
    for replica in replicas:
        assert gauge(server, "tether_upstream_conversations", replica) == 1


def test_a_new_conversation_that_replays_nothing_known_is_new(client: OpenAI, server: RunningServer,
                                                              replicas: list[FakeUpstream]) -> None:
    first = client.responses.create(model="m", input=[user("Hi")], store=False)
    # Same opening, but an answer that replica never gave: not a continuation of the first conversation.
    stranger = client.responses.create(model="m", store=False,
                                       input=[user("Hi"), assistant("from nowhere"), user("Go on")])
    assert served_by(stranger.output_text) != served_by(first.output_text)


# -- failover ------------------------------------------------------------------------------------
def test_a_killed_replica_hands_its_conversation_over(client: OpenAI, server: RunningServer,
                                                     replicas: list[FakeUpstream]) -> None:
    with client.responses.connect() as conn:
        previous = None
        for turn in range(2):
            events = ws_turn(conn, model="m", input=f"turn {turn}", store=False, previous_response_id=previous)
            previous = events[-1].response.id
        home = served_by(events[-1].response.output_text)
        dead, alive = (replicas[0], replicas[1]) if home == "A" else (replicas[1], replicas[0])
        dead.stop()  # its listening socket and every open connection close, as a killed engine's would
        events = ws_turn(conn, model="m", input="turn 2", store=False, previous_response_id=previous)
        final = events[-1]
        assert final.type == "response.completed", final
        assert served_by(final.response.output_text) != home
        # The whole conversation was replayed to the new replica, and its usage is its own (cold) count.
        assert [m["content"] for m in alive.requests[-1].messages] == [
            "turn 0", f"from {home}", "turn 1", f"from {home}", "turn 2"
        ]
        assert final.response.usage.input_tokens_details.cached_tokens == (30 if home == "B" else 0)
        events = ws_turn(conn, model="m", input="turn 3", store=False, previous_response_id=final.response.id)
        assert served_by(events[-1].response.output_text) != home  # it stays where it moved
    assert gauge(server, "tether_upstream_failovers_total", dead) == 1
    assert gauge(server, "tether_upstream_healthy", dead) == 0
    assert gauge(server, "tether_upstream_conversations", alive) == 1
    assert gauge(server, "tether_upstream_conversations", dead) == 0


def test_failed_health_check_moves_conversations_and_recovers(client: OpenAI, server: RunningServer,
                                                              replicas: list[FakeUpstream]) -> None:
    first = client.responses.create(model="m", input="Hello", store=True)
    home = served_by(first.output_text)
    sick = replicas["AB".index(home)]
    sick.health_status = 503  # llama.cpp's server says this while it loads a model
    wait_for(lambda: gauge(server, "tether_upstream_healthy", sick) == 0, "the replica marked down")
    moved = client.responses.create(model="m", input="Still there?", previous_response_id=first.id, store=True)
    assert served_by(moved.output_text) != home
    assert gauge(server, "tether_upstream_failovers_total", sick) == 1
    fresh = client.responses.create(model="m", input="A new conversation", store=True)
    assert served_by(fresh.output_text) != home  # nothing new goes to a replica that is down
    sick.health_status = 200
    wait_for(lambda: gauge(server, "tether_upstream_healthy", sick) == 1, "the replica back up")
    again = client.responses.create(model="m", input="And now?", previous_response_id=moved.id, store=True)
    assert served_by(again.output_text) != home  # a moved conversation stays where its cache now is


def test_pool_state_in_metrics(client: OpenAI, server: RunningServer, replicas: list[FakeUpstream]) -> None:
    for text in ("one", "two"):
        client.responses.create(model="m", input=text, store=False)
    for fake in replicas:
        assert gauge(server, "tether_upstream_requests_total", fake) == 1
        assert gauge(server, "tether_upstream_in_flight", fake) == 0
        assert gauge(server, "tether_upstream_healthy", fake) == 1
        assert gauge(server, "tether_upstream_prompt_tokens_total", fake) == 40
    assert gauge(server, "tether_upstream_cached_token_share", replicas[0]) == 0.75
    assert gauge(server, "tether_upstream_cached_token_share", replicas[1]) == 0


# -- the replica list ----------------------------------------------------------------------------
def test_upstream_file(tmp_path: Path, replicas: list[FakeUpstream]) -> None:
    listing = tmp_path / "replicas.txt"
    listing.write_text(f"# the engine pool\n{replicas[0].url}\n\n{replicas[1].url}/v1  # second\n")
    with running_server(tmp_path, "--backend", "upstream", "--upstream-file", str(listing)) as running:
        client = OpenAI(base_url=running.base_url, api_key="unused", max_retries=0)
        served = {served_by(client.responses.create(model="m", input=t, store=False).output_text) for t in "xy"}
        assert served == {"A", "B"}


@pytest.mark.parametrize(("content", "message"), [
    ("# nothing here\n", "names no replica"),
    ("ftp://example.com\n", "is not an http:// or https:// URL"),
])
def test_bad_upstream_file(tmp_path: Path, content: str, message: str) -> None:
    import subprocess
    import sys

    listing = tmp_path / "replicas.txt"
    listing.write_text(content)
    done = subprocess.run([sys.executable, "-m", "tether.cli", "serve", "--backend", "upstream",
                           "--upstream-file", str(listing)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr
