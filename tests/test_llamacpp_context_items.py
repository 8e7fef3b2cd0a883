"""The embedded engine with the settings items: a tool added mid-conversation (`additional_tools`) and a
`compaction_trigger` keep the KV of everything before them; the Lite shape is the classic prompt."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai import OpenAI

from .llamacpp_support import TIME_TOOL, WEATHER_TOOL, cached, final_response, llama_server, turn_tokens, ws_turn

pytestmark = pytest.mark.llamacpp
MODEL = "SmolLM2-135M-Instruct.Q4_1"
TOLERANCE = 2  # the last generated token is evaluated with the next turn
TEXT = {"max_output_tokens": 16, "temperature": 0, "store": False}


def test_added_tools_and_compaction_reprefill_nothing(tmp_path: Path) -> None:
    with llama_server(tmp_path) as server:
        client = OpenAI(base_url=server.base_url, api_key="unused")
        with client.responses.connect() as conn:
            first = final_response(ws_turn(conn, model=MODEL, instructions="You are terse.", tools=[WEATHER_TOOL],
                                           tool_choice="none", input="Say hello.", **TEXT))
            added = {"type": "additional_tools", "role": "developer", "tools": [TIME_TOOL]}
            second = final_response(ws_turn(
                conn, model=MODEL, instructions="You are terse.", tools=[WEATHER_TOOL], tool_choice="none",
                previous_response_id=first["id"], input=[added, {"role": "user", "content": "And the time?"}], **TEXT))
            assert cached(second) >= turn_tokens(first) - TOLERANCE
            assert second["prompt_cache_diagnostics"] == {"type": "cache_hit"}
            compacted = final_response(ws_turn(
                conn, model=MODEL, instructions="You are terse.", tools=[WEATHER_TOOL], tool_choice="none",
                previous_response_id=second["id"], input=[{"type": "compaction_trigger"}], **TEXT))
            assert [item["type"] for item in compacted["output"]] == ["compaction"]
            after = final_response(ws_turn(
                conn, model=MODEL, instructions="You are terse.", tools=[WEATHER_TOOL], tool_choice="none",
                previous_response_id=compacted["id"], input="Thanks.", **TEXT))
            assert cached(after) >= turn_tokens(second) - TOLERANCE


def test_the_lite_shape_is_the_classic_prompt(tmp_path: Path) -> None:
    with llama_server(tmp_path) as server:
        client = OpenAI(base_url=server.base_url, api_key="unused")
        # tool_choice auto: the tools are described in the system prompt, where both shapes must put them.
        classic = client.responses.create(model=MODEL, instructions="You are terse.", tools=[WEATHER_TOOL],
                                          input="Say hello.", max_output_tokens=16, temperature=0,
                                          parallel_tool_calls=False)
        lite = client.responses.create(
            model=MODEL, max_output_tokens=16, temperature=0, parallel_tool_calls=False,
            input=[{"type": "additional_tools", "role": "developer", "tools": [WEATHER_TOOL]},
                   {"role": "developer", "content": "You are terse."},
                   {"role": "user", "content": "Say hello."}])
        assert classic.usage is not None and lite.usage is not None
        assert lite.usage.input_tokens == classic.usage.input_tokens
        # The very same tokens: the engine's prefix cache serves the Lite prompt whole.
        assert lite.usage.input_tokens_details.cached_tokens >= classic.usage.input_tokens - TOLERANCE
        assert [item.to_dict() | {"id": None, "call_id": None} for item in lite.output] == [
            item.to_dict() | {"id": None, "call_id": None} for item in classic.output]
