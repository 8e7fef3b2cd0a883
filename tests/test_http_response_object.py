"""`POST /v1/responses` (JSON): a text answer's Response object has every field, filled; models and health."""

from __future__ import annotations

import httpx
from openai import OpenAI

from .support import RunningServer, ScriptedServer, validate_response

ANSWER = "The capital of France is Paris."
RESPONSE_FIELDS = {
    "id", "object", "created_at", "status", "background", "completed_at", "error", "incomplete_details",
    "instructions", "max_output_tokens", "max_tool_calls", "metadata", "model", "output", "parallel_tool_calls",
    "previous_response_id", "reasoning", "service_tier", "store", "temperature", "text", "tool_choice", "tools",
    "top_p", "top_logprobs", "truncation", "usage", "user", "frequency_penalty", "presence_penalty",
    "prompt_cache_key", "safety_identifier", "conversation",
}


SERVER = ScriptedServer([{"text": ANSWER}])


def test_text_answer_has_every_field(server: RunningServer) -> None:
    raw = httpx.post(server.base_url + "/responses", json={"model": "test-model", "input": "Capital of France?"})
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("application/json")
    body = raw.json()
    assert RESPONSE_FIELDS <= set(body), sorted(RESPONSE_FIELDS - set(body))
    validate_response(body)

    assert body["id"].startswith("resp_")
    assert body["object"] == "response"
    assert body["status"] == "completed"
    assert isinstance(body["created_at"], int) and isinstance(body["completed_at"], int)
    assert body["completed_at"] >= body["created_at"]
    assert body["error"] is None and body["incomplete_details"] is None
    assert body["instructions"] is None and body["max_output_tokens"] is None
    assert body["metadata"] == {}
    assert body["model"] == "test-model"
    assert body["parallel_tool_calls"] is True
    assert body["previous_response_id"] is None
    assert body["reasoning"] == {"effort": None, "summary": None}
    assert body["store"] is True and body["background"] is False
    # Filled with the API's defaults rather than left null (strict clients check them).
    assert body["temperature"] == 1.0 and body["top_p"] == 1.0
    assert body["frequency_penalty"] == 0.0 and body["presence_penalty"] == 0.0
    assert body["top_logprobs"] == 0
    assert body["text"]["format"] == {"type": "text"}
    assert body["tool_choice"] == "auto" and body["tools"] == []
    assert body["truncation"] == "disabled"
    assert body["user"] is None

    [message] = body["output"]
    assert message["type"] == "message" and message["role"] == "assistant" and message["status"] == "completed"
    assert message["id"].startswith("msg_")
    assert message["content"] == [{"type": "output_text", "text": ANSWER, "annotations": [], "logprobs": []}]

    usage = body["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert isinstance(usage["input_tokens_details"]["cached_tokens"], int)
    assert 0 <= usage["input_tokens_details"]["cached_tokens"] <= usage["input_tokens"]
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}


def test_sdk_create_and_retrieve_agree(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    created = client.responses.create(model="test-model", input="Capital of France?", user="u-1")
    assert created.output_text == ANSWER
    assert created.user == "u-1"
    assert created.usage is not None and created.usage.input_tokens_details.cached_tokens >= 0
    retrieved = client.responses.retrieve(created.id)
    assert retrieved.model_dump() == created.model_dump()


def test_models_lists_the_backend_model(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    models = client.models.list()
    assert [model.id for model in models.data] == ["tether-scripted"]
    [model] = models.data
    assert model.object == "model" and model.owned_by == "tether" and isinstance(model.created, int)
    raw = httpx.get(server.base_url + "/models").json()
    assert raw["object"] == "list"


def test_health(server: RunningServer) -> None:
    response = httpx.get(server.url + "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "backend": "scripted", "engine": {}}
