"""Steering and interrupting on the real embedded engine: a steered response stops at a token boundary
and its successor continues the same KV state (no re-prefill); an interrupt stops the engine at once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI

from .llamacpp_support import MODEL, llama_server
from .support import RunningServer, validate_ws_event

pytestmark = pytest.mark.llamacpp


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with llama_server(tmp_path_factory.mktemp("llamacpp-steering")) as running:
        yield running


def until(conn: Any, kind: str) -> list[dict[str, Any]]:
    events = []
    while True:
        raw = conn._connection.recv(timeout=600)  # a deadline, not a timing: the machine may be loaded
        event = json.loads(raw)
        if event["type"] not in ("response.interrupt.accepted", "response.output_item.interrupted"):
            if not (event["type"] == "response.incomplete"
                    and event["response"]["incomplete_details"]["reason"] == "interrupted"):
                validate_ws_event(event)
        events.append(event)
        if event["type"] == kind:
            return events


def start_counting(conn: Any, up_to: int, max_output_tokens: int) -> str:
    """Start a long greedy answer and wait for its first text; the response's id."""
    conn.response.create(model=MODEL, input=f"Count from 1 to {up_to}, one number a line.", store=False,
                         temperature=0, max_output_tokens=max_output_tokens)
    first = until(conn, "response.output_text.delta")
    return str(first[0]["response"]["id"])


def test_a_steered_successor_continues_the_stopped_responses_kv_state(server: RunningServer) -> None:
    with OpenAI(base_url=server.base_url, api_key="unused").responses.connect() as conn:
        response_id = start_counting(conn, 200, max_output_tokens=64)
        conn.response.steer(input="Stop counting and say hello.", previous_response_id=response_id)
        stopped = until(conn, "response.incomplete")[-1]["response"]
        assert stopped["incomplete_details"] == {"reason": "steered"}
        stopped_usage = stopped["usage"]
        assert 0 < stopped_usage["output_tokens"] < 64
        successor = until(conn, "response.completed")[-1]["response"]
        assert successor["previous_response_id"] == response_id
        usage = successor["usage"]
        # Everything the stopped response held (its prompt and what it generated) was still in the KV.
        held = stopped_usage["input_tokens"] + stopped_usage["output_tokens"]
        assert usage["input_tokens_details"]["cached_tokens"] >= held - 1
        assert usage["input_tokens"] - usage["input_tokens_details"]["cached_tokens"] < 40


def test_an_interrupt_stops_the_engine_and_the_next_turn_works(server: RunningServer) -> None:
    with OpenAI(base_url=server.base_url, api_key="unused").responses.connect() as conn:
        response_id = start_counting(conn, 300, max_output_tokens=1000)
        conn.send({"type": "response.interrupt", "response_id": response_id, "mode": "discard_partial_items"})
        events = until(conn, "response.incomplete")
        kinds = [event["type"] for event in events]
        assert "response.interrupt.accepted" in kinds and "response.output_item.interrupted" in kinds
        assert kinds.count("response.output_text.delta") < 200
        assert events[-1]["response"]["output"] == []
        conn.response.create(model=MODEL, input="Say hi.", previous_response_id=response_id, store=False,
                             temperature=0, max_output_tokens=16)
        follow = until(conn, "response.output_item.done")[0]["response"]
        assert follow["previous_response_id"] == response_id
