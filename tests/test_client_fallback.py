"""The client's recoveries: HTTP when the upgrade is refused, a fresh connection with the full context when the
socket drops or the server lost the chain, and clear exceptions when nothing helps."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tether.client import AsyncTetherClient, ServerError, TransportError, TurnTimeout

from .support import free_port, serve_script

TURNS = [{"text": f"answer {n}"} for n in range(1, 7)]


async def test_refused_upgrade_falls_back_to_http(tmp_path: Path) -> None:
    with serve_script(tmp_path, TURNS, "--no-websocket") as server:
        async with AsyncTetherClient(server.base_url) as client:
            conversation = client.conversation(model="m")
            first = await conversation.send("one")
            second = await conversation.send("two")
    assert first.output_text == "answer 1" and second.output_text == "answer 2"
    assert first.stats.transport == "http" and first.stats.recoveries == ["upgrade refused: 426"]
    assert second.stats.transport == "http" and second.stats.recoveries == []
    assert client.http_only and conversation.transport == "http"
    assert second.stats.input_items_sent == 3  # HTTP with store:false: full context


async def test_warm_up_on_refused_upgrade_is_skipped(tmp_path: Path) -> None:
    with serve_script(tmp_path, TURNS, "--no-websocket") as server:
        async with AsyncTetherClient(server.base_url) as client:
            conversation = client.conversation(model="m")
            assert await conversation.warm_up() is None
            assert (await conversation.send("one")).output_text == "answer 1"


async def test_lost_socket_reconnects_with_full_context(tmp_path: Path) -> None:
    with serve_script(tmp_path, TURNS) as server:
        async with AsyncTetherClient(server.base_url) as client:
            conversation = client.conversation(model="m", store=False)
            await conversation.send("one")
            second = await conversation.send("two")
            assert second.stats.incremental
            assert conversation._ws is not None and conversation._ws.ws is not None
            conversation._ws.ws.transport.abort()  # the network drops the socket; the client does not know yet
            await asyncio.sleep(0.05)
            third = await conversation.send("three")
            fourth = await conversation.send("four")
            await conversation.close()
    assert third.output_text == "answer 3" and fourth.output_text == "answer 4"
    assert third.stats.recoveries == ["connection lost"] and third.stats.attempts == 2
    assert not third.stats.incremental and third.stats.input_items_sent == 5
    assert fourth.stats.incremental and fourth.stats.input_items_sent == 1  # chaining resumes on the new socket


async def test_connection_limit_reconnects_with_full_context(tmp_path: Path) -> None:
    with serve_script(tmp_path, TURNS, "--ws-lifetime", "1") as server:
        async with AsyncTetherClient(server.base_url) as client:
            conversation = client.conversation(model="m", store=False)
            await conversation.send("one")
            await asyncio.sleep(1.5)  # the server sends websocket_connection_limit_reached and closes
            second = await conversation.send("two")
            await conversation.close()
    assert second.output_text == "answer 2"
    assert second.stats.recoveries and second.stats.recoveries[0] in (
        "websocket_connection_limit_reached", "connection lost")
    assert not second.stats.incremental and second.stats.input_items_sent == 3


async def test_store_false_chain_lost_by_the_server_is_resent_in_full(tmp_path: Path) -> None:
    # A zero process-wide cache budget: each connection's put evicts the other connections' lanes, so
    # conversation A's parent is gone when it continues; with store:false it cannot be hydrated either.
    with serve_script(tmp_path, TURNS, "--ws-cache-total-mb", "0") as server:
        async with AsyncTetherClient(server.base_url) as client:
            a = client.conversation(model="m", store=False)
            b = client.conversation(model="m", store=False)
            await a.send("a1")
            await b.send("b1")
            a2 = await a.send("a2")
            a3 = await a.send("a3")
            await a.close()
            await b.close()
    assert a2.output_text == "answer 2" and a3.output_text == "answer 3"
    assert a2.stats.recoveries == ["previous_response_not_found"] and a2.stats.attempts == 2
    assert not a2.stats.incremental and a2.stats.input_items_sent == 3
    assert a3.stats.incremental  # the fresh connection holds the chain again


async def test_stored_chain_continues_on_a_new_connection(tmp_path: Path) -> None:
    with serve_script(tmp_path, TURNS) as server:
        async with AsyncTetherClient(server.base_url) as client:
            conversation = client.conversation(model="m", store=True)
            await conversation.send("one")
            await conversation.close()
            second = await conversation.send("two")  # new socket: the server hydrates the parent from its store
            await conversation.close()
    assert second.output_text == "answer 2"
    assert second.stats.incremental and second.stats.recoveries == []


async def test_http_store_true_chains_incrementally(tmp_path: Path) -> None:
    with serve_script(tmp_path, TURNS) as server:
        async with AsyncTetherClient(server.base_url, transport="http") as client:
            conversation = client.conversation(model="m", store=True)
            await conversation.send("one")
            second = await conversation.send("two")
    assert second.output_text == "answer 2" and second.stats.incremental and second.stats.transport == "http"


async def test_server_error_is_raised_with_its_code(tmp_path: Path) -> None:
    with serve_script(tmp_path, TURNS) as server:
        async with AsyncTetherClient(server.base_url) as client:
            conversation = client.conversation(model="m")
            with pytest.raises(ServerError) as raised:
                await conversation.send("one", background=True)
            assert raised.value.status == 400 and raised.value.param == "background"
            assert conversation.items == []  # a failed turn adds nothing to the history
            ok = await conversation.send("one", background=False)  # the socket is still usable
            assert ok.output_text == "answer 1" and ok.stats.recoveries == []
            await conversation.close()
        async with AsyncTetherClient(server.base_url, transport="http") as client:
            with pytest.raises(ServerError) as raised:
                await client.conversation(model="m").send("x", temperature=9)
            assert raised.value.status == 400 and raised.value.param == "temperature"
            assert "temperature" in str(raised.value)


async def test_event_timeout(tmp_path: Path) -> None:
    with serve_script(tmp_path, [{"text": "slow"}], ttft_ms=3000) as server:
        for transport in ("ws", "http"):
            async with AsyncTetherClient(server.base_url, transport=transport, event_timeout=0.5) as client:
                conversation = client.conversation(model="m")
                with pytest.raises(TurnTimeout):
                    await conversation.send("hi")
                await conversation.close()


async def test_no_server_is_a_transport_error() -> None:
    async with AsyncTetherClient(f"http://127.0.0.1:{free_port()}/v1", connect_timeout=2) as client:
        conversation = client.conversation(model="m")
        with pytest.raises(TransportError):
            await conversation.send("hi")
