"""Prompt caching against a real tether: `prompt_cache_options` (`prewarm` as a warm-up over HTTP, SSE
and WebSocket; `mode`, `ttl`, `comparison_response_id` validated and echoed), `prompt_cache_breakpoint`
on content parts (kept), and `prompt_cache_diagnostics` on every final Response, counted in `/metrics`
and named in the per-turn log line."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from openai import OpenAI

from .support import RunningServer, ScriptedServer, assert_error, post_sse, validate_response
from .ws_support import collect, completed, create_event, metric, output_text, user

TURNS = [{"text": "first answer"}, {"text": "second answer"}, {"text": "third answer"}]
TOOL = {"type": "function", "name": "run", "parameters": {"type": "object", "properties": {}}}
DEFAULT_OPTIONS = {"mode": "implicit", "ttl": "30m", "comparison_response_id": None}


SERVER = ScriptedServer(TURNS, "--log-level", "info")


def create(server: RunningServer, **body: Any) -> httpx.Response:
    return httpx.post(server.url + "/v1/responses", json={"model": "m", **body}, timeout=30)


def post(server: RunningServer, **body: Any) -> dict[str, Any]:
    reply = create(server, **body)
    assert reply.status_code == 200, reply.text
    response: dict[str, Any] = reply.json()
    validate_response(response)
    return response


def diagnostics(response: dict[str, Any]) -> dict[str, Any]:
    return dict(response["prompt_cache_diagnostics"])


# -- prompt_cache_options ---------------------------------------------------------------------------------


def test_prewarm_over_http_prepares_a_context_to_continue(server: RunningServer) -> None:
    options = {"prewarm": True, "ttl": "12h", "mode": "explicit"}
    warm = post(server, instructions="Be brief.", input="Context first.", prompt_cache_options=options)
    assert warm["status"] == "completed" and warm["output"] == []
    assert warm["usage"]["input_tokens"] > 0 and warm["usage"]["output_tokens"] == 0
    assert warm["prompt_cache_options"] == {"mode": "explicit", "ttl": "12h", "comparison_response_id": None}
    answer = post(server, instructions="Be brief.", input="Go.", previous_response_id=warm["id"])
    assert output_text(answer) == "first answer"  # the warm-up made no model turn
    # The engine kept what the warm-up prepared: only the new message was prefilled.
    assert answer["usage"]["input_tokens_details"]["cached_tokens"] >= warm["usage"]["input_tokens"]
    assert diagnostics(answer) == {"type": "cache_hit"}
    assert answer["prompt_cache_options"] == DEFAULT_OPTIONS


def test_prewarm_over_sse_is_created_then_completed(server: RunningServer) -> None:
    events = post_sse(server.url, {"model": "m", "input": "warm me", "prompt_cache_options": {"prewarm": True}})
    assert [event["type"] for event in events] == ["response.created", "response.completed"]
    assert events[-1]["response"]["output"] == []


def test_prewarm_over_websocket_overrides_generate(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect() as conn:
        conn.send(create_event(input="warm me", generate=True, prompt_cache_options={"prewarm": True}, store=False))
        events = collect(conn)
        assert [event["type"] for event in events] == ["response.created", "response.completed"]
        warm = completed(events)
        conn.response.create(model="m", input="Go.", previous_response_id=warm["id"], store=False)
        answer = completed(collect(conn))
    assert output_text(answer) == "first answer"
    assert diagnostics(answer) == {"type": "cache_hit"}


def test_generate_false_stays_websocket_only(server: RunningServer) -> None:
    assert_error(create(server, input="x", generate=False), 400, param="generate")


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ([], "prompt_cache_options"),
        ({"mode": "sometimes"}, "prompt_cache_options.mode"),
        ({"ttl": "1h"}, "prompt_cache_options.ttl"),
        ({"prewarm": 1}, "prompt_cache_options.prewarm"),
        ({"comparison_response_id": ""}, "prompt_cache_options.comparison_response_id"),
    ],
)
def test_bad_prompt_cache_options_are_400(server: RunningServer, options: Any, param: str) -> None:
    assert_error(create(server, input="x", prompt_cache_options=options), 400, param=param)


def test_breakpoints_are_accepted_and_kept(server: RunningServer) -> None:
    marked = {"type": "input_text", "text": "a long shared prefix",
              "prompt_cache_breakpoint": {"mode": "explicit", "ttl": "12h"}}
    response = post(server, input=[{"role": "user", "content": [marked]}])
    listed = httpx.get(f"{server.url}/v1/responses/{response['id']}/input_items", timeout=30).json()
    assert listed["data"][0]["content"] == [marked]
    bad = {**marked, "prompt_cache_breakpoint": {"mode": "implicit"}}
    reply = create(server, input=[{"role": "user", "content": [bad]}])
    assert_error(reply, 400, param="input[0].content[0].prompt_cache_breakpoint.mode")


# -- prompt_cache_diagnostics ------------------------------------------------------------------------------


def test_diagnostics_against_the_parent_over_http(server: RunningServer) -> None:
    misses = metric(server, "tether_prompt_cache_misses_total", reason="tools_changed")
    hits = metric(server, "tether_prompt_cache_diagnostics_total", type="cache_hit")
    first = post(server, input="hello", tools=[TOOL])
    assert diagnostics(first) == {"type": "unavailable"}  # a new conversation: nothing to compare with
    second = post(server, input="more", tools=[TOOL], previous_response_id=first["id"])
    assert diagnostics(second) == {"type": "cache_hit"}
    third = post(server, input="and more", previous_response_id=second["id"])  # the tool is gone
    assert diagnostics(third) == {"type": "cache_miss", "reason": "tools_changed",
                                  "cache_missed_tokens": third["usage"]["input_tokens"]}
    # Stored with the response: retrieving it says the same.
    stored = httpx.get(f"{server.url}/v1/responses/{third['id']}", timeout=30).json()
    assert stored["prompt_cache_diagnostics"] == diagnostics(third)
    assert metric(server, "tether_prompt_cache_misses_total", reason="tools_changed") == misses + 1
    assert metric(server, "tether_prompt_cache_diagnostics_total", type="cache_hit") == hits + 1
    fourth = post(server, model="other", input="x", previous_response_id=third["id"])
    assert diagnostics(fourth)["reason"] == "model_changed"
    # The per-turn log line names the same reason.
    lines = [json.loads(line[line.index("{"):]) for line in server.log().splitlines() if fourth["id"] in line
             and '"response_id"' in line]
    assert [line["cache"] for line in lines] == ["model_changed"]


def test_an_explicit_comparison_over_http(server: RunningServer) -> None:
    first = post(server, input="the shared question")
    second = post(server, input="a follow-up", previous_response_id=first["id"])
    history = [user("the shared question"),
               {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "first answer"}]}]
    # A new chain that re-sends the history: its prompt extends the compared one's.
    same = post(server, input=[*history, user("a follow-up")],
                prompt_cache_options={"comparison_response_id": second["id"]})
    assert diagnostics(same) == {"type": "cache_hit"}
    assert same["prompt_cache_options"]["comparison_response_id"] == second["id"]
    # One that rewrites the follow-up: reusable up to the history.
    other = post(server, input=[*history, user("something else entirely")],
                 prompt_cache_options={"comparison_response_id": second["id"]})
    result = diagnostics(other)
    assert result["type"] == "cache_miss" and result["reason"] == "input_changed"
    assert 0 < result["comparison_reusable_tokens"] < other["usage"]["input_tokens"]
    assert result["cache_missed_tokens"] == other["usage"]["input_tokens"] - result["comparison_reusable_tokens"]
    missing = post(server, input="x", prompt_cache_options={"comparison_response_id": "resp_0123456789abcdef"})
    assert diagnostics(missing) == {"type": "comparison_response_not_found"}


def test_diagnostics_over_websocket_compare_with_the_connection_cache(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with client.responses.connect() as conn:
        conn.response.create(model="m", input="hello", store=False)
        first = completed(collect(conn))
        assert diagnostics(first) == {"type": "unavailable"}
        conn.response.create(model="m", input="more", previous_response_id=first["id"], store=False)
        second = completed(collect(conn))
        assert diagnostics(second) == {"type": "cache_hit"}
        # store:false: the compared response is only in this connection's cache.
        conn.send(create_event(input=[user("hello"), user("changed")], store=False,
                               prompt_cache_options={"comparison_response_id": second["id"]}))
        third = completed(collect(conn))
        result = diagnostics(third)
        assert result["reason"] == "input_changed" and result["comparison_reusable_tokens"] > 0
        conn.response.create(model="m", input="x", previous_response_id=third["id"], store=False,
                             service_tier="flex")
        fourth = completed(collect(conn))
        assert diagnostics(fourth) == {"type": "cache_miss", "reason": "service_tier_changed",
                                       "cache_missed_tokens": fourth["usage"]["input_tokens"]}
