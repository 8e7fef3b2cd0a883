"""`POST /v1/responses/input_tokens` and `POST /v1/responses/compact` over HTTP."""

from __future__ import annotations

import httpx
from openai import OpenAI

from .support import RunningServer, ScriptedServer, assert_error

TURNS = [{"text": f"compact turn {k} with a reasonably long answer to make the context grow"} for k in range(6)]


SERVER = ScriptedServer(TURNS)


def test_input_tokens_counts_and_grows(server: RunningServer, client: OpenAI) -> None:
    raw = httpx.post(server.base_url + "/responses/input_tokens", json={"model": "m", "input": "hello there"})
    assert raw.status_code == 200
    body = raw.json()
    assert set(body) == {"object", "input_tokens"}
    assert body["object"] == "response.input_tokens" and body["input_tokens"] > 0
    short = client.responses.input_tokens.count(model="m", input="hello there")
    assert short.input_tokens == body["input_tokens"]
    longer = client.responses.input_tokens.count(model="m", input="hello there " * 50)
    assert longer.input_tokens > short.input_tokens
    with_instructions = client.responses.input_tokens.count(model="m", input="hello there",
                                                            instructions="Answer like a pirate, always.")
    assert with_instructions.input_tokens > short.input_tokens
    tool = {"type": "function", "name": "lookup", "description": "Look a thing up",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}
    with_tool = client.responses.input_tokens.count(model="m", input="hello there", tools=[tool])  # type: ignore[list-item]
    assert with_tool.input_tokens > short.input_tokens
    # `model` is optional here.
    no_model = httpx.post(server.base_url + "/responses/input_tokens", json={"input": "hello there"})
    assert no_model.json()["input_tokens"] == body["input_tokens"]


def test_input_tokens_matches_what_create_prefills(client: OpenAI) -> None:
    counted = client.responses.input_tokens.count(model="m", input="count me")
    created = client.responses.create(model="m", input="count me")
    assert created.usage is not None and created.usage.input_tokens == counted.input_tokens
    chained = client.responses.input_tokens.count(model="m", input="next", previous_response_id=created.id)
    assert chained.input_tokens > counted.input_tokens


def test_input_tokens_errors(server: RunningServer) -> None:
    url = server.base_url + "/responses/input_tokens"
    assert_error(httpx.post(url, json={"input": "x", "previous_response_id": "resp_nope"}), 400,
                 param="previous_response_id", code="previous_response_not_found")
    assert_error(httpx.post(url, json={"input": [{"type": "bogus"}]}), 400, param="input[0].type")
    assert_error(httpx.post(url, content=b"{nope"), 400, param=None)


def test_compact_and_feed_back(client: OpenAI) -> None:
    first = client.responses.create(model="m", input="first question")
    second = client.responses.create(model="m", input="second question", previous_response_id=first.id)
    raw = client.responses.with_raw_response.compact(model="m", previous_response_id=second.id, input="third question")
    # Read as JSON: the SDK types `output` as output items, which the kept user messages are not.
    body = raw.http_response.json()
    assert raw.parse().output[-1].type == "compaction"
    assert body["object"] == "response.compaction" and body["id"]
    assert isinstance(body["created_at"], int) and body["usage"]["input_tokens"] > 0
    output = body["output"]
    assert output[-1]["type"] == "compaction" and output[-1]["id"].startswith("cmp_")
    assert isinstance(output[-1]["encrypted_content"], str) and output[-1]["encrypted_content"]
    # The user messages stay verbatim; the answers went into the compaction item.
    assert [item["role"] for item in output[:-1]] == ["user", "user", "user"]
    assert all(item["type"] == "message" for item in output[:-1])
    # The compacted window as input: the model sees both earlier answers, so it plays turn 2.
    resumed = client.responses.create(model="m", input=output)  # type: ignore[arg-type]
    assert resumed.output_text == TURNS[2]["text"]
    restored = [item.to_dict() for item in client.responses.input_items.list(resumed.id, order="asc")]
    assert [(item["role"], item["content"][0]["text"]) for item in restored] == [
        ("user", "first question"), ("assistant", TURNS[0]["text"]), ("user", "second question"),
        ("assistant", TURNS[1]["text"]), ("user", "third question"),
    ]  # the conversation in its original order, each item once
    later = client.responses.create(model="m", input=[*output, {"role": "user", "content": "and then?"}])  # type: ignore[list-item]
    assert later.output_text == TURNS[2]["text"]


def test_compact_string_input(client: OpenAI) -> None:
    compacted = client.responses.compact(model="m", input="just this")
    assert compacted.output[-1].type == "compaction"


def test_compact_errors(server: RunningServer) -> None:
    url = server.base_url + "/responses/compact"
    assert_error(httpx.post(url, json={"input": "x"}), 400, param="model")
    assert_error(httpx.post(url, json={"model": "m", "previous_response_id": "resp_nope"}), 400,
                 code="previous_response_not_found", param="previous_response_id")
