"""The embedded engine's slots through the server: KV memory in `/health` and `/metrics`, and `stream_id`
forks of a cached parent that start from a copy of its cells and answer as they do alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from .llamacpp_support import MODEL, cached, final_response, llama_server, turn_tokens
from .support import RunningServer
from .ws_support import by_lane, collect, metric, output_text

pytestmark = pytest.mark.llamacpp
MIB = 1024 * 1024
SLOTS = 3
CTX = 4096  # llama_server's --ctx


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with llama_server(tmp_path_factory.mktemp("slots"), "--parallel", str(SLOTS), "--kv-budget-mb", "64") as running:
        yield running


def _engine(server: RunningServer) -> dict[str, Any]:
    return dict(httpx.get(server.url + "/health", timeout=10).json()["engine"])


def test_health_and_metrics_show_resident_and_parked_kv(server: RunningServer) -> None:
    slots = _engine(server)["slots"]
    assert slots["count"] == SLOTS and slots["ctx_per_slot"] == CTX
    assert slots["kv_bytes"] > 0 and slots["kv_bytes"] % (SLOTS * CTX) == 0  # every slot's cells, allocated
    assert metric(server, "tether_llamacpp_slots") == SLOTS
    assert metric(server, "tether_llamacpp_kv_resident_bytes") == slots["kv_bytes"]
    assert metric(server, "tether_llamacpp_kv_parked_budget_bytes") == 64 * MIB
    client = OpenAI(base_url=server.base_url, api_key="unused")
    client.responses.create(model=MODEL, input="Say hello.", max_output_tokens=16, temperature=0, store=False)
    engine = _engine(server)
    per_token = engine["slots"]["kv_bytes"] // (SLOTS * CTX)
    assert engine["slots"]["resident_tokens"] > 0 and engine["slots"]["busy"] == 0
    assert engine["slots"]["kv_bytes_used"] == engine["slots"]["resident_tokens"] * per_token
    assert engine["kv_store"]["budget_bytes"] == 64 * MIB
    assert metric(server, "tether_llamacpp_kv_resident_used_bytes") == engine["slots"]["kv_bytes_used"]
    assert metric(server, "tether_llamacpp_turns_total") >= 1
    from tether.backends.llamacpp.step_cost import READY_STEPS

    cost = engine["step_cost"]  # fitted from every step the engine ran: what sizes long prompts' chunks
    assert cost["steps_seen"] == engine["steps"] > 0
    assert (cost["ms_per_token"] is None) == (cost["steps_seen"] < READY_STEPS)


def _fork(conn: Any, lane: str, parent: str, text: str) -> None:
    conn.response.create(model=MODEL, input=text, previous_response_id=parent, stream_id=lane,
                         max_output_tokens=24, temperature=0, store=False)


def test_concurrent_forks_copy_the_parents_cells(server: RunningServer) -> None:
    """Two lanes fork one cached parent at once: one continues the parent's slot, the other starts from
    a copy of its cells in another sequence. Both reuse the whole parent, and each answers exactly as
    the same fork does later on its own."""
    client = OpenAI(base_url=server.base_url, api_key="unused")
    questions = {"a": "What is the capital of France?", "b": "Name three kinds of trees."}
    with client.responses.connect() as conn:
        conn.response.create(model=MODEL, input="Tell me about the sea.", max_output_tokens=32, temperature=0,
                             store=False)
        parent = final_response(collect(conn))
        copies = _engine(server)["copies"]
        for lane, text in questions.items():
            _fork(conn, lane, parent["id"], text)
        lanes = by_lane(collect(conn, terminals=2))
        together = {lane: final_response(lanes[lane]) for lane in questions}
        for response in together.values():
            assert cached(response) >= turn_tokens(parent) - 2
        assert _engine(server)["copies"] >= copies + 1
        for lane, text in questions.items():  # each fork again, alone
            _fork(conn, lane + "-alone", parent["id"], text)
            alone = final_response(collect(conn))
            assert output_text(alone) == output_text(together[lane])
