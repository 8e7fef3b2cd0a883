"""The embedded engine's KV state: lane continuations, the prefix cache, eviction under a small budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai import OpenAI

from .llamacpp_support import MODEL, cached, final_response, llama_server, sse_turn, turn_tokens, ws_turn

pytestmark = pytest.mark.llamacpp
TOLERANCE = 2  # the last generated token is evaluated with the next turn; the template adds no more


def test_ws_continuation_reuses_the_lane(tmp_path: Path) -> None:
    with llama_server(tmp_path) as server:
        client = OpenAI(base_url=server.base_url, api_key="unused")
        with client.responses.connect() as conn:
            first = final_response(ws_turn(conn, model=MODEL, input="Tell me about cats.", max_output_tokens=24,
                                           temperature=0, store=False))
            previous = first
            for question in ("And dogs?", "And birds?"):
                events = ws_turn(conn, model=MODEL, input=question, previous_response_id=previous["id"],
                                 max_output_tokens=24, temperature=0, store=False)
                response = final_response(events)
                assert cached(response) >= turn_tokens(previous) - TOLERANCE
                assert response["usage"]["input_tokens"] > turn_tokens(previous)
                previous = response


def test_http_chain_uses_the_prefix_cache(tmp_path: Path) -> None:
    with llama_server(tmp_path) as server:
        client = OpenAI(base_url=server.base_url, api_key="unused")
        first = final_response(sse_turn(client, model=MODEL, input="Tell me about cats.", max_output_tokens=24,
                                        temperature=0))
        second = final_response(sse_turn(client, model=MODEL, input="And dogs?", previous_response_id=first["id"],
                                         max_output_tokens=24, temperature=0))
        assert cached(second) >= turn_tokens(first) - TOLERANCE
        # another conversation in between parks this one; the chain still finds its prefix
        sse_turn(client, model=MODEL, input="Something else entirely: name a fruit.", max_output_tokens=16,
                 temperature=0, instructions="You are terse.")
        third = final_response(sse_turn(client, model=MODEL, input="And birds?", previous_response_id=second["id"],
                                        max_output_tokens=16, temperature=0))
        assert cached(third) >= turn_tokens(second) - TOLERANCE


def test_tiny_kv_budget_evicts_but_answers(tmp_path: Path) -> None:
    """One slot for two conversations: each new turn parks the other one, whose state does not fit 1 MiB."""
    with llama_server(tmp_path, "--kv-budget-mb", "1", "--parallel", "1") as server:
        client = OpenAI(base_url=server.base_url, api_key="unused")
        with client.responses.connect() as a, client.responses.connect() as b:
            turns = {}
            for name, conn, topic in (("a", a, "cats"), ("b", b, "the history of Rome")):
                turns[name] = final_response(ws_turn(conn, model=MODEL, input=f"Tell me about {topic}.",
                                                     max_output_tokens=48, temperature=0, store=False))
            for name, conn in (("a", a), ("b", b)):
                previous = turns[name]
                response = final_response(ws_turn(conn, model=MODEL, input="Say more.",
                                                  previous_response_id=previous["id"], max_output_tokens=16,
                                                  temperature=0, store=False))
                assert response["output"][0]["content"][0]["text"]
                # its KV state (about 23 KB a token) did not fit 1 MiB: only the shared system prompt was reused
                assert cached(response) < turn_tokens(previous) - TOLERANCE
                assert response["usage"]["input_tokens"] > turn_tokens(previous)


def test_warm_up_prefills_the_kv_cache(tmp_path: Path) -> None:
    """A `generate: false` warm-up evaluates its prompt, so the first real turn reuses all of it."""
    instructions = "You are a careful assistant for a warm-up test. " * 6
    with llama_server(tmp_path) as server:
        client = OpenAI(base_url=server.base_url, api_key="unused")
        with client.responses.connect() as conn:
            conn.send({"type": "response.create", "model": MODEL, "generate": False, "store": False,
                       "instructions": instructions, "input": "Tell me about cats."})
            warm = None
            for event in conn:
                data = event.to_dict()
                if data["type"] == "response.completed":
                    warm = data["response"]
                    break
            assert warm is not None and warm["output"] == []
            warm_tokens = warm["usage"]["input_tokens"]
            assert warm_tokens > 40
            response = final_response(ws_turn(conn, model=MODEL, instructions=instructions, input="Be brief.",
                                              previous_response_id=warm["id"], max_output_tokens=16,
                                              temperature=0, store=False))
            # everything the warm-up evaluated, less its generation prompt, is reused
            assert cached(response) >= warm_tokens - 6
