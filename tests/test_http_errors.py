"""Errors a client can cause over HTTP: always the API's envelope `{"error": {message, type, param, code}}`
with the right status and `param`, never a 500, and the server stays usable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import BadRequestError, OpenAI

from .support import RunningServer, ScriptedServer, assert_error

MAX_BODY = 4096


SERVER = ScriptedServer([{"text": "fine"}], "--max-body-bytes", str(MAX_BODY))


def post(server: RunningServer, content: bytes, path: str = "/responses") -> httpx.Response:
    return httpx.post(server.base_url + path, content=content, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    "content",
    [b"{", b"not json", b'{"model": "m", "input": "hi",}', b"\xff\xfe\x00", b'{"model": NaN}', b"[" * 2000,
     b'{"model": "m"', b""],
)
@pytest.mark.parametrize("path", ["/responses", "/responses/input_tokens", "/responses/compact"])
def test_malformed_json_is_400(server: RunningServer, content: bytes, path: str) -> None:
    assert_error(post(server, content, path), 400, param=None)


@pytest.mark.parametrize("content", [b"[]", b'"text"', b"1", b"null", b"true", b'[{"model": "m"}]'])
def test_body_not_an_object_is_400(server: RunningServer, content: bytes) -> None:
    assert_error(post(server, content), 400, param=None)


@pytest.mark.parametrize(
    ("body", "param"),
    [({"input": "hi"}, "model"), ({"model": "", "input": "hi"}, "model"), ({"model": 5, "input": "hi"}, "model"),
     ({"model": "m", "input": 5}, "input"),
     ({"model": "m", "input": [{"type": "bogus"}]}, "input[0].type"),
     ({"model": "m", "input": ["hi", {"type": "bogus"}]}, "input[0]"),
     ({"model": "m", "input": [{"role": "user", "content": "a"}, {"type": "bogus"}]}, "input[1].type"),
     ({"model": "m", "input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
     ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_video"}]}]}, "input[0].content[0].type"),
     ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text"}]}]}, "input[0].content[0].text"),
     ({"model": "m", "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
     ({"model": "m", "input": [{"type": "function_call_output", "call_id": "c" * 65, "output": "x"}]},
      "input[0].call_id"),
     ({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input[0].arguments"),
     ({"model": "m", "input": [{"type": "item_reference"}]}, "input[0].id"),
     ({"model": "m", "input": [{"type": "item_reference", "id": "msg_missing"}]}, "input[0].id"),
     ({"model": "m", "input": [{"type": "compaction_trigger"}, {"role": "user", "content": "x"}]}, "input"),
     ({"model": "m", "input": "hi", "generate": False}, "generate")],
)
def test_invalid_request_names_the_param(server: RunningServer, body: dict[str, Any], param: str) -> None:
    raw = httpx.post(server.base_url + "/responses", json=body)
    assert_error(raw, 400, param=param)
    # The same checks guard the streaming path, before any event is sent.
    assert_error(httpx.post(server.base_url + "/responses", json={**body, "stream": True}), 400, param=param)


def test_sdk_raises_bad_request(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    with pytest.raises(BadRequestError) as caught:
        client.responses.create(model="m", input=[{"type": "bogus"}])  # type: ignore[list-item]
    assert caught.value.param == "input[0].type" and caught.value.type == "invalid_request_error"


def test_body_over_the_limit_is_413(server: RunningServer) -> None:
    big = {"model": "m", "input": "x" * (MAX_BODY + 10)}
    assert_error(httpx.post(server.base_url + "/responses", json=big), 413, code="request_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        yield b'{"model": "m", "input": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    raw = httpx.post(server.base_url + "/responses", content=chunks(), headers={"Content-Type": "application/json"})
    assert_error(raw, 413, code="request_too_large")
    assert_error(httpx.post(server.base_url + "/responses/input_tokens", json=big), 413)
    # Just under the limit is fine.
    fits = {"model": "m", "input": "z" * (MAX_BODY - 100)}
    assert httpx.post(server.base_url + "/responses", json=fits).status_code == 200


def test_unknown_route_is_404_envelope(server: RunningServer) -> None:
    assert_error(httpx.get(server.base_url + "/nothing-here"), 404)
    assert_error(httpx.post(server.base_url + "/chat/completions", json={}), 404)
    assert_error(httpx.get(server.url + "/"), 404)
    assert_error(httpx.get(server.base_url + "/responses/resp_1/nope"), 404)


def test_wrong_method_is_405_envelope(server: RunningServer) -> None:
    assert_error(httpx.put(server.base_url + "/responses", json={}), 405)
    assert_error(httpx.patch(server.base_url + "/responses/resp_1", json={}), 405)


def test_get_responses_without_upgrade_is_426(server: RunningServer) -> None:
    assert_error(httpx.get(server.base_url + "/responses"), 426)


def test_server_is_usable_after_errors(server: RunningServer) -> None:
    for _ in range(3):
        post(server, b"{")
        httpx.post(server.base_url + "/responses", json={"model": "m", "input": [{"type": "bogus"}]})
    client = OpenAI(base_url=server.base_url, api_key="unused")
    assert client.responses.create(model="m", input="hi").output_text == "fine"
    assert "Traceback" not in server.log()
