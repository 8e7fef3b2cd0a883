"""An upstream that hangs or drops connections, behind a real tether server: each of the three
timeouts fails the turn with a `response.failed` that names it, and a request that a kept-alive
connection swallowed without a byte is sent once more on a fresh connection (and nothing is ever
sent twice once an answer began)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from tether.api.items import normalize_input
from tether.backends.base import Finished, GenerationParams, TextDelta
from tether.backends.upstream import UpstreamBackend
from tether.backends.upstream_http import Timeouts

from .fake_upstream import BlackholeListener, FakeUpstream, Reply, text_reply
from .support import RunningServer, running_server
from .upstream_support import metric, sse_events

# Short enough to keep the suite quick, long enough that a loaded machine never trips them by accident.
TIMEOUTS = ("--upstream-connect-timeout", "1", "--upstream-first-byte-timeout", "2", "--upstream-idle-timeout", "2")
HANG = 120.0  # the fake hangs this long at most; a reset or stop ends it at once


@pytest.fixture(scope="module")
def server(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("upstream-faults")
    with running_server(tmp, "--backend", "upstream", "--upstream-url", fake.url, "--store", "memory",
                        *TIMEOUTS) as running:
        yield running


@pytest.fixture
def upstream(fake: FakeUpstream, server: RunningServer) -> Iterator[FakeUpstream]:
    fake.reset()
    yield fake
    fake.reset()  # ends a hang the test left behind


@pytest.fixture
def client(server: RunningServer) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def retries(server: RunningServer, fake: FakeUpstream) -> float:
    return metric(server, f'tether_upstream_retries_total{{replica="{fake.url}/v1"}}')


def failed_message(events: list[dict[str, object]]) -> str:
    last = events[-1]
    assert last["type"] == "response.failed", last
    response = last["response"]
    assert isinstance(response, dict)
    error = response["error"]
    assert isinstance(error, dict) and error["code"] == "server_error", error
    return str(error["message"])


# -- timeouts ------------------------------------------------------------------------------------
def test_no_headers_is_the_first_byte_timeout(upstream: FakeUpstream, client: OpenAI) -> None:
    upstream.script(Reply(text_reply("never").events, stall=HANG))
    message = failed_message(sse_events(client, model="m", input="Hi"))
    assert "first-byte timeout" in message and "--upstream-first-byte-timeout" in message
    assert "within 2 s" in message and upstream.url in message
    assert len(upstream.requests) == 1  # a timeout is never retried: the engine may be working on it


def test_headers_but_no_event_is_the_first_byte_timeout(upstream: FakeUpstream, client: OpenAI) -> None:
    upstream.script(Reply(text_reply("never").events, stall_after_headers=HANG))
    message = failed_message(sse_events(client, model="m", input="Hi"))
    assert "first-byte timeout" in message


def test_silence_mid_answer_is_the_idle_timeout(upstream: FakeUpstream, client: OpenAI) -> None:
    upstream.script(Reply(text_reply("part one, then nothing", size=5).events, stall_after=3, stall_mid=HANG))
    events = sse_events(client, model="m", input="Hi")
    message = failed_message(events)
    assert "idle timeout" in message and "--upstream-idle-timeout" in message and "nothing for 2 s" in message
    deltas = "".join(str(e["delta"]) for e in events if e["type"] == "response.output_text.delta")
    assert deltas == "part one, "  # the two text chunks before the silence were streamed
    assert len(upstream.requests) == 1


def test_connect_timeout(tmp_path: Path) -> None:
    hole = BlackholeListener()
    try:
        with running_server(tmp_path, "--backend", "upstream", "--upstream-url", hole.url, "--store", "memory",
                            *TIMEOUTS) as down:
            client = OpenAI(base_url=down.base_url, api_key="unused", max_retries=0)
            message = failed_message(sse_events(client, model="m", input="Hi"))
            assert "connect timeout" in message and "--upstream-connect-timeout" in message
            assert "within 1 s" in message and hole.url in message
    finally:
        hole.close()


def test_a_turn_after_a_timeout_works(upstream: FakeUpstream, client: OpenAI) -> None:
    upstream.script(Reply(text_reply("never").events, stall=HANG), text_reply("Back."))
    assert client.responses.create(model="m", input="Hi").status == "failed"
    assert client.responses.create(model="m", input="Again").output_text == "Back."


# -- the stale-connection retry ------------------------------------------------------------------
def test_request_swallowed_by_a_kept_alive_connection_is_sent_again_fresh(
    upstream: FakeUpstream, client: OpenAI, server: RunningServer
) -> None:
    before = retries(server, upstream)
    upstream.script(text_reply("First."), Reply(unanswered=True), text_reply("Second."))
    assert client.responses.create(model="m", input="One").output_text == "First."
    second = client.responses.create(model="m", input="Two")
    assert second.status == "completed" and second.output_text == "Second."
    first, swallowed, resent = upstream.requests
    assert swallowed.body == resent.body
    assert resent.peer not in (first.peer, swallowed.peer)  # a new connection, not another pooled one
    assert retries(server, upstream) == before + 1


def test_swallowed_twice_fails_without_a_third_try(upstream: FakeUpstream, client: OpenAI) -> None:
    upstream.script(Reply(unanswered=True), Reply(unanswered=True), text_reply("too late"))
    message = failed_message(sse_events(client, model="m", input="Hi"))
    assert "closed the connection without answering, twice" in message
    assert len(upstream.requests) == 2


@pytest.mark.parametrize("die_after", [0, 3])
def test_no_retry_once_the_answer_began(upstream: FakeUpstream, client: OpenAI, server: RunningServer,
                                        die_after: int) -> None:
    # 0: the status line and headers came, then the connection died; 3: three events came first.
    before = retries(server, upstream)
    upstream.script(Reply(text_reply("a partial answer").events, die_after=die_after), text_reply("not sent"))
    message = failed_message(sse_events(client, model="m", input="Hi"))
    assert "upstream" in message
    assert len(upstream.requests) == 1
    assert retries(server, upstream) == before


# -- in-process: what the timers count -----------------------------------------------------------
async def test_time_the_consumer_takes_is_not_idle_time(fake: FakeUpstream) -> None:
    fake.reset()
    fake.script(text_reply("slowly read", size=3))
    backend = UpstreamBackend(fake.url, timeouts=Timeouts(idle=0.2, first_byte=0.5), health_interval=0)
    try:
        session = backend.new_session()
        deltas = []
        async for delta in session.generate(normalize_input("Hi"), GenerationParams(model="m")):
            deltas.append(delta)
            await asyncio.sleep(0.3)  # a client slower than the idle timeout, between every two chunks
        assert isinstance(deltas[-1], Finished)
        assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == "slowly read"
    finally:
        await backend.aclose()


async def test_a_cancelled_turn_stays_cancelled(fake: FakeUpstream) -> None:
    fake.reset()
    fake.script(Reply(text_reply("x").events, stall_after=2, stall_mid=HANG))
    backend = UpstreamBackend(fake.url, timeouts=Timeouts(idle=60.0), health_interval=0)

    async def turn() -> None:
        async for _ in backend.new_session().generate(normalize_input("Hi"), GenerationParams(model="m")):
            pass

    try:
        task = asyncio.create_task(turn())
        while not fake.requests:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        task.cancel()  # a client that went away: the read is interrupted, not turned into a timeout
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        fake.reset()
        await backend.aclose()
