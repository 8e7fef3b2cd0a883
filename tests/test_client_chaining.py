"""The client's incremental chaining: fewer bytes than full context, same answers, Codex's rules."""

from __future__ import annotations

from pathlib import Path

from tether.client import AsyncTetherClient, TetherClient
from tether.client.chain import ChainPoint, plan

from .conftest import AGENT_TURNS
from .support import serve_script

TOOLS = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}},
         {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}]


async def run_tool_loop(base_url: str, transport: str, warm_up: bool = True) -> tuple[list[str], list, list]:
    async with AsyncTetherClient(base_url, transport=transport) as client:  # type: ignore[arg-type]
        conversation = client.conversation(model="m", tools=TOOLS, store=False)
        if warm_up:
            await conversation.warm_up()
        result = await conversation.send("weather?")
        texts, stats = [result.output_text], [result.stats]
        while result.function_calls:
            outputs = [{"type": "function_call_output", "call_id": c.call_id, "output": "ok"}
                       for c in result.function_calls]
            result = await conversation.send(outputs)
            texts.append(result.output_text)
            stats.append(result.stats)
        items = conversation.items
        await conversation.close()
        return texts, stats, items


async def test_incremental_chaining_sends_fewer_bytes(tmp_path: Path) -> None:
    with serve_script(tmp_path, AGENT_TURNS) as server:
        ws_texts, ws_stats, ws_items = await run_tool_loop(server.base_url, "ws")
        http_texts, http_stats, http_items = await run_tool_loop(server.base_url, "http")
    assert ws_texts == http_texts and ws_texts[-1] == "Paris is sunny and Rome is warm."
    assert [s.transport for s in ws_stats] == ["ws"] * 3
    assert [s.incremental for s in ws_stats] == [True, True, True]  # the warm-up made even the first one so
    assert [s.incremental for s in http_stats] == [False, False, False]
    assert [s.input_items_sent for s in ws_stats] == [1, 1, 2]
    assert [s.input_items_sent for s in http_stats] == [1, 3, 7]
    # the later turns grow with the history over HTTP, not over the socket
    assert ws_stats[-1].bytes_sent < http_stats[-1].bytes_sent
    assert sum(s.bytes_sent for s in ws_stats[1:]) < sum(s.bytes_sent for s in http_stats[1:])
    assert ws_stats[-1].cached_tokens > 0
    # the local history is the same whichever transport built it (ids aside)
    assert [(i.get("type"), i.get("role")) for i in ws_items] == [(i.get("type"), i.get("role")) for i in http_items]
    for stats in ws_stats + http_stats:
        assert stats.first_event_s is not None and 0 < stats.first_event_s <= stats.server_wait_s
        assert 0 <= stats.model_s <= stats.server_wait_s


async def test_changed_request_fields_send_full_context(tmp_path: Path) -> None:
    with serve_script(tmp_path, [{"text": "one"}, {"text": "two"}, {"text": "three"}]) as server:
        async with AsyncTetherClient(server.base_url) as client:
            conversation = client.conversation(model="m", instructions="be brief")
            first = await conversation.send("a")
            second = await conversation.send("b")
            third = await conversation.send("c", instructions="be verbose")
            await conversation.close()
    assert (first.stats.incremental, second.stats.incremental, third.stats.incremental) == (False, True, False)
    assert (first.output_text, second.output_text, third.output_text) == ("one", "two", "three")
    assert third.stats.input_items_sent == 5


def test_plan_rules() -> None:
    user = {"type": "message", "role": "user", "content": "hi"}
    answer = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "yo"}]}
    more = {"type": "message", "role": "user", "content": "more"}
    fields = {"model": "m", "store": False, "tools": []}
    point = ChainPoint("resp_1", fields, [user], [answer], connection=1)
    assert plan(point, fields, [user, answer, more], 1) == ([more], "resp_1")
    assert plan(point, fields, [user, answer, more], 2) == ([user, answer, more], None)  # another socket
    assert plan(point, {**fields, "store": True}, [user, answer, more], 2) == ([user, answer, more], None)
    stored = ChainPoint("resp_1", {**fields, "store": True}, [user], [answer], connection=None)
    assert plan(stored, {**fields, "store": True}, [user, answer, more], None) == ([more], "resp_1")  # hydratable
    assert plan(point, {**fields, "tools": [{"type": "function", "name": "x"}]}, [user, answer, more], 1)[1] is None
    assert plan(point, fields, [more, answer, user], 1)[1] is None  # history rewritten
    assert plan(None, fields, [user], 1) == ([user], None)


def test_sync_client(tmp_path: Path) -> None:
    with serve_script(tmp_path, [{"text": "one"}, {"text": "two"}]) as server, TetherClient(server.base_url) as client:
        conversation = client.conversation(model="m")
        assert conversation.warm_up() is not None
        seen: list[str] = []
        conversation.conversation.on_event = lambda event: seen.append(event.type)
        assert conversation.send("a").output_text == "one"
        result = conversation.send("b")
        assert result.output_text == "two" and result.stats.incremental
        assert seen.count("response.completed") == 2 and "response.output_text.delta" in seen
        assert len(conversation.items) == 4
        conversation.close()
