"""Chaining over HTTP with `previous_response_id`: each turn's context is exactly the parent's context,
the parent's output and the new input; instructions never carry over; unknown parents are refused.
The module runs on each store: memory, SQLite and PostgreSQL (a chain hydrated in one query)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import BadRequestError, OpenAI

from tether.backends.tokens import approx_tokens, item_tokens

from .store_support import STORED_KINDS, store_for
from .support import RunningServer, assert_error, serve_script

TURNS = [{"text": f"answer number {k}"} for k in range(8)]
INSTRUCTIONS = "You are a careful assistant that answers in one short sentence."


@pytest.fixture(scope="module", params=["memory", *STORED_KINDS])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("chain")
    store = store_for(request.param, request, directory)
    with serve_script(directory, TURNS, "--store", store.spec) as running:
        yield running


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def test_chain_of_seven_turns_carries_the_whole_context(client: OpenAI) -> None:
    first_input = user("question 0")
    previous = client.responses.create(model="m", input=[first_input], instructions=INSTRUCTIONS)
    assert previous.output_text == "answer number 0"
    assert previous.instructions == INSTRUCTIONS
    assert previous.usage is not None
    # What the model was shown in the first turn, less the instructions (they are not inherited).
    context_tokens = previous.usage.input_tokens - approx_tokens(INSTRUCTIONS)
    for k in range(1, 7):
        new_input = [user(f"question {k}"), user(f"detail {k}" * k)]
        response = client.responses.create(model="m", input=new_input, previous_response_id=previous.id)
        # The scripted model plays turn k only if all k earlier answers are in its context.
        assert response.output_text == f"answer number {k}"
        assert response.previous_response_id == previous.id
        assert response.instructions is None
        # ...and its prompt is exactly parent context + parent output + new input.
        parent_output = sum(item_tokens(item.to_dict()) for item in previous.output)
        context_tokens += parent_output + sum(item_tokens(item) for item in new_input)
        assert response.usage is not None and response.usage.input_tokens == context_tokens
        previous = response
    # The same context counted by input_tokens, one step further.
    count = client.responses.input_tokens.count(model="m", previous_response_id=previous.id, input="next")
    parent_output = sum(item_tokens(item.to_dict()) for item in previous.output)
    assert count.input_tokens == context_tokens + parent_output + item_tokens(user("next"))


def test_instructions_are_not_inherited(client: OpenAI) -> None:
    first = client.responses.create(model="m", input="hi", instructions="Always answer in French.")
    second = client.responses.create(model="m", input="again", previous_response_id=first.id)
    assert first.instructions == "Always answer in French."
    assert second.instructions is None
    third = client.responses.create(model="m", input="more", previous_response_id=second.id,
                                    instructions="Now in German.")
    assert third.instructions == "Now in German."
    assert client.responses.retrieve(second.id).instructions is None
    assert third.output_text == "answer number 2"


def test_branching_from_the_same_parent(client: OpenAI) -> None:
    root = client.responses.create(model="m", input="root")
    left = client.responses.create(model="m", input="left", previous_response_id=root.id)
    right = client.responses.create(model="m", input="right", previous_response_id=root.id)
    assert left.output_text == right.output_text == "answer number 1"
    deeper = client.responses.create(model="m", input="deeper", previous_response_id=left.id)
    assert deeper.output_text == "answer number 2"


def test_function_call_outputs_through_the_chain(tmp_path: Any) -> None:
    turns = [{"tool_calls": [{"name": "f", "arguments": {"n": 1}}]}, {"text": "got it"}]
    with serve_script(tmp_path, turns) as server:
        client = OpenAI(base_url=server.base_url, api_key="unused")
        tools: Any = [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}]
        first = client.responses.create(model="m", input="call f", tools=tools)
        [call] = first.output
        assert call.type == "function_call"
        second = client.responses.create(
            model="m", tools=tools, previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "42"}],
        )
        assert second.output_text == "got it"


def test_unknown_previous_response_is_400(server: RunningServer, client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as caught:
        client.responses.create(model="m", input="hi", previous_response_id="resp_does_not_exist")
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.param == "previous_response_id"
    raw = httpx.post(server.base_url + "/responses",
                     json={"model": "m", "input": "hi", "previous_response_id": "resp_nope", "stream": True})
    assert_error(raw, 400, param="previous_response_id", code="previous_response_not_found")


def test_store_false_parent_is_not_found_over_http(server: RunningServer, client: OpenAI) -> None:
    parent = client.responses.create(model="m", input="hi", store=False)
    assert parent.store is False
    raw = httpx.post(server.base_url + "/responses",
                     json={"model": "m", "input": "hi", "previous_response_id": parent.id})
    assert_error(raw, 400, param="previous_response_id", code="previous_response_not_found")
