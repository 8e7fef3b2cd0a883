from __future__ import annotations

from openai import OpenAI

from .support import RunningServer, validate_ws_event


def test_ws_tool_loop_store_false(scripted_server: RunningServer) -> None:
    client = OpenAI(base_url=scripted_server.base_url, api_key="unused")
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}},
             {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}]
    with client.responses.connect() as conn:
        conn.send({"type": "response.create", "model": "m", "generate": False, "input": [], "tools": tools,
                   "store": False})
        warm = None
        for event in conn:
            if event.type == "response.completed":
                warm = event.response
                break
        assert warm is not None and warm.output == []
        previous = warm.id
        new_input: list[dict] = [{"role": "user", "content": "weather?"}]
        texts = []
        for _ in range(3):
            conn.response.create(model="m", input=new_input, previous_response_id=previous, tools=tools, store=False)
            events = []
            for event in conn:
                events.append(event)
                if event.type in ("response.completed", "response.failed", "error"):
                    break
            for event in events:
                validate_ws_event(event.to_dict())
            final = events[-1]
            assert final.type == "response.completed", final
            previous = final.response.id
            calls = [item for item in final.response.output if item.type == "function_call"]
            new_input = [{"type": "function_call_output", "call_id": c.call_id, "output": "ok"} for c in calls]
            texts.append(final.response.output_text)
            if not calls:
                break
        assert texts[-1] == "Paris is sunny and Rome is warm."
