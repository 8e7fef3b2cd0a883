"""Create parameters over HTTP: echoed when valid, 400 with the precise `param` when not."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openai import BadRequestError, OpenAI

from .support import RunningServer, ScriptedServer, assert_error, validate_response

LONG = "A fairly long scripted answer, written so that a small max_output_tokens cuts it short: " * 3
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
          "additionalProperties": False}


SERVER = ScriptedServer([{"text": LONG}])


def create(server: RunningServer, **fields: Any) -> httpx.Response:
    return httpx.post(server.base_url + "/responses", json={"model": "m", "input": "hi", **fields})


def test_max_output_tokens_small_is_incomplete(client: OpenAI) -> None:
    response = client.responses.create(model="m", input="hi", max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.max_output_tokens == 16
    assert response.usage is not None and 0 < response.usage.output_tokens <= 16
    assert response.output_text and LONG.startswith(response.output_text) and response.output_text != LONG
    assert client.responses.retrieve(response.id).status == "incomplete"


def test_max_output_tokens_below_16_is_400(server: RunningServer) -> None:
    assert_error(create(server, max_output_tokens=15), 400, param="max_output_tokens")


def test_sampling_parameters_echoed(client: OpenAI) -> None:
    response = client.responses.create(model="m", input="hi", temperature=0.2, top_p=0.5, top_logprobs=3,
                                       extra_body={"presence_penalty": 0.5, "frequency_penalty": -0.5})
    assert response.temperature == 0.2 and response.top_p == 0.5 and response.top_logprobs == 3
    body = response.to_dict()
    assert body["presence_penalty"] == 0.5 and body["frequency_penalty"] == -0.5


@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature", 2.5), ("temperature", -0.1), ("top_p", 1.5), ("top_logprobs", 21), ("presence_penalty", 3),
     ("frequency_penalty", -2.5), ("temperature", "hot")],
)
def test_sampling_parameter_out_of_range_is_400(server: RunningServer, field: str, value: Any) -> None:
    assert_error(create(server, **{field: value}), 400, param=field)


def test_sdk_sees_bad_request_with_param(client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as caught:
        client.responses.create(model="m", input="hi", temperature=3)
    assert caught.value.param == "temperature" and caught.value.type == "invalid_request_error"


def test_metadata_at_the_limits_is_echoed(client: OpenAI) -> None:
    metadata = {f"k{i}": "v" for i in range(15)} | {"x" * 64: "y" * 512}
    response = client.responses.create(model="m", input="hi", metadata=metadata)
    assert response.metadata == metadata
    assert client.responses.retrieve(response.id).metadata == metadata


def test_metadata_over_the_limits_is_400(server: RunningServer) -> None:
    assert_error(create(server, metadata={f"k{i}": "v" for i in range(17)}), 400, param="metadata")
    assert_error(create(server, metadata={"x" * 65: "v"}), 400, param="metadata")
    assert_error(create(server, metadata={"key": "v" * 513}), 400, param="metadata.key")
    assert_error(create(server, metadata={"key": 1}), 400, param="metadata.key")
    assert_error(create(server, metadata=["a"]), 400, param="metadata")


def test_json_schema_format_accepted_and_echoed(client: OpenAI) -> None:
    fmt = {"type": "json_schema", "name": "answer_1", "schema": SCHEMA, "strict": True}
    response = client.responses.create(model="m", input="hi", text={"format": fmt, "verbosity": "low"})  # type: ignore[typeddict-item]
    assert response.status == "completed"
    echoed = response.to_dict()["text"]
    assert echoed == {"format": fmt, "verbosity": "low"}
    json_object = client.responses.create(model="m", input="hi", text={"format": {"type": "json_object"}})
    assert json_object.text is not None and json_object.text.format is not None
    assert json_object.text.format.type == "json_object"


def test_json_schema_bad_name_or_schema_is_400(server: RunningServer) -> None:
    bad_name = {"format": {"type": "json_schema", "name": "has spaces", "schema": SCHEMA}}
    assert_error(create(server, text=bad_name), 400, param="text.format.name")
    no_name = {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert_error(create(server, text=no_name), 400, param="text.format.name")
    no_schema = {"format": {"type": "json_schema", "name": "ok"}}
    assert_error(create(server, text=no_schema), 400, param="text.format.schema")
    assert_error(create(server, text={"format": {"type": "yaml"}}), 400, param="text.format.type")
    assert_error(create(server, text={"verbosity": "loud"}), 400, param="text.verbosity")


def test_include_valid_and_invalid(server: RunningServer, client: OpenAI) -> None:
    response = client.responses.create(model="m", input="hi",
                                       include=["reasoning.encrypted_content", "message.output_text.logprobs"])
    assert response.status == "completed"
    assert_error(create(server, include=["no.such.thing"]), 400, param="include[0]")
    assert_error(create(server, include=["reasoning.encrypted_content", "bogus"]), 400, param="include[1]")
    assert_error(create(server, include="reasoning.encrypted_content"), 400, param="include")


def test_truncation_reasoning_prompt_cache_key_echoed(client: OpenAI) -> None:
    response = client.responses.create(
        model="m", input="hi", truncation="auto", reasoning={"effort": "low", "summary": "auto"},
        prompt_cache_key="conversation-42", safety_identifier="user-hash", service_tier="flex",
        instructions="Answer in French.",
    )
    assert response.truncation == "auto"
    assert response.reasoning is not None
    assert response.reasoning.effort == "low" and response.reasoning.summary == "auto"
    assert response.prompt_cache_key == "conversation-42"
    assert response.safety_identifier == "user-hash"
    assert response.service_tier == "flex"
    assert response.instructions == "Answer in French."
    validate_response(httpx.get(f"{client.base_url}responses/{response.id}").json())


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"truncation": "sometimes"}, "truncation"), ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
     ({"reasoning": {"summary": "long"}}, "reasoning.summary"), ({"service_tier": "gold"}, "service_tier"),
     ({"prompt_cache_key": 5}, "prompt_cache_key"), ({"store": "yes"}, "store"), ({"instructions": 1}, "instructions"),
     ({"parallel_tool_calls": "no"}, "parallel_tool_calls"), ({"safety_identifier": "x" * 65}, "safety_identifier"),
     ({"stream_options": "fast"}, "stream_options"), ({"tools": {"type": "function"}}, "tools"),
     ({"tools": [{"type": "hammer"}]}, "tools[0].type"), ({"tools": [{"type": "function"}]}, "tools[0].name"),
     ({"tools": [{"type": "namespace", "name": "ns", "tools": [{"type": "web_search"}]}]}, "tools[0].tools[0].type"),
     ({"conversation": "conv_1"}, "conversation"), ({"stream_id": "s1"}, "stream_id")],
)
def test_invalid_parameter_is_400_with_param(server: RunningServer, fields: dict[str, Any], param: str) -> None:
    assert_error(create(server, **fields), 400, param=param)


def test_unknown_top_level_fields_are_tolerated(client: OpenAI) -> None:
    response = client.responses.create(
        model="m", input="hi", extra_body={"personality": "pragmatic", "x_future_field": {"nested": [1, 2]},
                                           "client_metadata": {"a": "b"}},
    )
    assert response.status == "completed"
