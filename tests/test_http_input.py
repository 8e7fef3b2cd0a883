"""`input` in every shape a client sends: a string, messages with parts, easy messages, tool calls and
their outputs passed back, reasoning items, item references, and items that carry their own ids.

The scripted model plays turn k when the context holds k model turns, so its answer shows which
history the server really put in front of it."""

from __future__ import annotations

from typing import Any

from openai import OpenAI

from .support import ScriptedServer

TURNS = [{"text": f"turn {k}"} for k in range(6)]


SERVER = ScriptedServer(TURNS)


def input_items(client: OpenAI, response_id: str) -> list[dict[str, Any]]:
    return [item.to_dict() for item in client.responses.input_items.list(response_id, order="asc")]


def test_string_input_is_one_user_message(client: OpenAI) -> None:
    response = client.responses.create(model="m", input="hello")
    assert response.output_text == "turn 0"
    [item] = input_items(client, response.id)
    assert item["type"] == "message" and item["role"] == "user" and item["id"].startswith("msg_")
    assert item["content"] == [{"type": "input_text", "text": "hello"}]


def test_messages_with_text_parts(client: OpenAI) -> None:
    parts = [{"type": "input_text", "text": "first part"}, {"type": "input_text", "text": "second part"}]
    response = client.responses.create(
        model="m",
        input=[{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "be brief"}]},
               {"type": "message", "role": "user", "content": parts}],
    )
    assert response.output_text == "turn 0"
    items = input_items(client, response.id)
    assert [item["role"] for item in items] == ["developer", "user"]
    assert items[1]["content"] == parts


def test_easy_messages_with_string_content(client: OpenAI) -> None:
    response = client.responses.create(
        model="m",
        input=[{"role": "system", "content": "You are terse."},
               {"role": "user", "content": "hi"},
               {"role": "assistant", "content": "hello"},
               {"role": "user", "content": "again"}],
    )
    assert response.output_text == "turn 1"  # the assistant message in the input is one model turn
    items = input_items(client, response.id)
    assert [(item["type"], item["role"]) for item in items] == [
        ("message", "system"), ("message", "user"), ("message", "assistant"), ("message", "user")
    ]
    assert items[2]["content"][0]["type"] == "output_text" and items[2]["content"][0]["text"] == "hello"
    assert items[3]["content"] == [{"type": "input_text", "text": "again"}]


def test_function_call_and_output_passed_back(client: OpenAI) -> None:
    response = client.responses.create(
        model="m", store=True,
        input=[{"role": "user", "content": "weather?"},
               {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": '{"city":"Paris"}'},
               {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
               {"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": '{"city":"Rome"}'},
               {"type": "function_call_output", "call_id": "call_b",
                "output": [{"type": "input_text", "text": "warm"}]}],
    )
    assert response.output_text == "turn 2"
    items = input_items(client, response.id)
    assert [item["type"] for item in items] == [
        "message", "function_call", "function_call_output", "function_call", "function_call_output"
    ]
    assert items[1]["call_id"] == "call_a" and items[1]["arguments"] == '{"city":"Paris"}'
    assert items[2]["output"] == "sunny" and items[4]["output"] == [{"type": "input_text", "text": "warm"}]
    assert all(item["id"] for item in items)


def test_custom_tool_call_and_output_passed_back(client: OpenAI) -> None:
    patch = "*** Begin Patch\n*** End Patch"
    response = client.responses.create(
        model="m",
        input=[{"role": "user", "content": "patch it"},
               {"type": "custom_tool_call", "call_id": "call_c", "name": "apply_patch", "input": patch},
               {"type": "custom_tool_call_output", "call_id": "call_c", "output": "Done!"}],
    )
    assert response.output_text == "turn 1"
    items = input_items(client, response.id)
    assert [item["type"] for item in items] == ["message", "custom_tool_call", "custom_tool_call_output"]
    assert items[1]["input"] == patch and items[1]["name"] == "apply_patch"
    assert items[2]["output"] == "Done!" and items[2]["call_id"] == "call_c"


def test_reasoning_items_passed_back(client: OpenAI) -> None:
    reasoning = {"type": "reasoning", "id": "rs_client_1", "encrypted_content": "opaque-blob",
                 "summary": [{"type": "summary_text", "text": "Need the weather."}]}
    response = client.responses.create(
        model="m",
        input=[{"role": "user", "content": "weather?"},
               reasoning,  # reasoning + the call it led to are one model turn
               {"type": "function_call", "call_id": "call_r", "name": "get_weather", "arguments": "{}"},
               {"type": "function_call_output", "call_id": "call_r", "output": "sunny"}],
    )
    assert response.output_text == "turn 1"
    items = input_items(client, response.id)
    assert items[1]["type"] == "reasoning" and items[1]["id"] == "rs_client_1"
    assert items[1]["summary"] == reasoning["summary"] and items[1]["encrypted_content"] == "opaque-blob"


def test_item_reference_to_a_stored_item(client: OpenAI) -> None:
    first = client.responses.create(model="m", input="hi")
    answer_id = first.output[0].id
    assert answer_id is not None
    second = client.responses.create(
        model="m",
        input=[{"role": "user", "content": "hi"}, {"type": "item_reference", "id": answer_id},
               {"role": "user", "content": "and?"}],
    )
    assert second.output_text == "turn 1"  # the reference resolved to the stored assistant message
    items = input_items(client, second.id)
    assert items[1]["id"] == answer_id and items[1]["type"] == "message" and items[1]["role"] == "assistant"
    assert items[1]["content"][0]["text"] == "turn 0"


def test_item_reference_to_a_stored_input_item(client: OpenAI) -> None:
    first = client.responses.create(model="m", input=[{"type": "message", "id": "msg_ref_src", "role": "user",
                                                        "content": "remember me"}])
    second = client.responses.create(model="m", input=[{"type": "item_reference", "id": "msg_ref_src"}])
    assert second.output_text == "turn 0"
    [item] = input_items(client, second.id)
    assert item["id"] == "msg_ref_src" and item["content"] == [{"type": "input_text", "text": "remember me"}]
    assert first.id != second.id


def test_items_keep_the_ids_they_carry(client: OpenAI) -> None:
    response = client.responses.create(
        model="m",
        input=[{"type": "message", "id": "msg_client_1", "role": "user", "content": "hi"},
               {"type": "function_call", "id": "fc_client_2", "call_id": "call_x", "name": "f", "arguments": "{}"},
               {"type": "function_call_output", "id": "fco_client_3", "call_id": "call_x", "output": "1"}],
    )
    assert [item["id"] for item in input_items(client, response.id)] == ["msg_client_1", "fc_client_2", "fco_client_3"]
