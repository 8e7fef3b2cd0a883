from __future__ import annotations

from openai import OpenAI

from .support import RunningServer


def test_text_then_tool_calls_then_chain(scripted_server: RunningServer) -> None:
    client = OpenAI(base_url=scripted_server.base_url, api_key="unused")
    tools = [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}},
        {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}},
    ]
    first = client.responses.create(model="any", input="What is the weather?", tools=tools)
    assert first.status == "completed"
    assert first.output[0].type == "function_call"
    call = first.output[0]
    second = client.responses.create(
        model="any", previous_response_id=first.id, tools=tools,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    assert [item.type for item in second.output] == ["function_call", "function_call"]
    assert second.usage is not None and second.usage.input_tokens_details.cached_tokens > 0
    third = client.responses.create(
        model="any", previous_response_id=second.id, tools=tools,
        input=[{"type": "function_call_output", "call_id": c.call_id, "output": "x"} for c in second.output],
    )
    assert third.output_text == "Paris is sunny and Rome is warm."
    assert client.responses.retrieve(third.id).id == third.id
