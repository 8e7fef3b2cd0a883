"""`GET /v1/responses/{id}/input_items`: order (desc by default), `limit`, the `after` cursor,
`has_more`, `first_id`/`last_id`, and errors with a precise `param`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openai import OpenAI
from openai.types.responses.response_item import ResponseItem
from pydantic import TypeAdapter

from .support import RunningServer, ScriptedServer, _no_extras, assert_error

ITEMS: TypeAdapter[Any] = TypeAdapter(ResponseItem)
IDS = [f"msg_in_{k}" for k in range(5)]


SERVER = ScriptedServer([{"text": "ok"}])


@pytest.fixture(scope="module")
def response_id(server: RunningServer) -> str:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    response = client.responses.create(
        model="m",
        input=[{"type": "message", "id": item_id, "role": "user", "content": f"part {k}"}
               for k, item_id in enumerate(IDS)],
    )
    return response.id


def page(server: RunningServer, response_id: str, **query: Any) -> dict[str, Any]:
    raw = httpx.get(f"{server.base_url}/responses/{response_id}/input_items", params=query)
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert set(body) == {"object", "data", "first_id", "last_id", "has_more"}
    assert body["object"] == "list"
    return dict(body)


def test_default_is_newest_first(server: RunningServer, response_id: str) -> None:
    body = page(server, response_id)
    assert [item["id"] for item in body["data"]] == IDS[::-1]
    assert body["first_id"] == IDS[-1] and body["last_id"] == IDS[0] and body["has_more"] is False
    for item in body["data"]:
        _no_extras(ITEMS.validate_python(item), "input_item")
        assert item["type"] == "message" and item["status"] == "completed"


def test_order_asc(server: RunningServer, response_id: str) -> None:
    body = page(server, response_id, order="asc")
    assert [item["id"] for item in body["data"]] == IDS
    assert body["data"][2]["content"] == [{"type": "input_text", "text": "part 2"}]


def test_limit_and_after_cursor(server: RunningServer, response_id: str) -> None:
    first = page(server, response_id, order="asc", limit=2)
    assert [item["id"] for item in first["data"]] == IDS[:2]
    assert first["first_id"] == IDS[0] and first["last_id"] == IDS[1] and first["has_more"] is True
    second = page(server, response_id, order="asc", limit=2, after=first["last_id"])
    assert [item["id"] for item in second["data"]] == IDS[2:4] and second["has_more"] is True
    third = page(server, response_id, order="asc", limit=2, after=second["last_id"])
    assert [item["id"] for item in third["data"]] == IDS[4:] and third["has_more"] is False
    exact = page(server, response_id, limit=5)
    assert len(exact["data"]) == 5 and exact["has_more"] is False
    desc = page(server, response_id, limit=2, after=IDS[3])
    assert [item["id"] for item in desc["data"]] == [IDS[2], IDS[1]] and desc["has_more"] is True
    empty = page(server, response_id, order="asc", after=IDS[-1])
    assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


def test_sdk_pagination(server: RunningServer, response_id: str) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    first = client.responses.input_items.list(response_id, limit=2, order="asc")
    assert [item.id for item in first.data] == IDS[:2] and first.has_more is True
    assert [item.id for item in first] == IDS  # auto-pagination follows `after`
    assert [item.id for item in client.responses.input_items.list(response_id, limit=3)] == IDS[::-1]


@pytest.mark.parametrize("limit", ["0", "101", "abc", "-1", "2.5"])
def test_bad_limit_is_400(server: RunningServer, response_id: str, limit: str) -> None:
    raw = httpx.get(f"{server.base_url}/responses/{response_id}/input_items", params={"limit": limit})
    assert_error(raw, 400, param="limit")


def test_bad_order_and_after_are_400(server: RunningServer, response_id: str) -> None:
    url = f"{server.base_url}/responses/{response_id}/input_items"
    assert_error(httpx.get(url, params={"order": "sideways"}), 400, param="order")
    assert_error(httpx.get(url, params={"after": "msg_not_here"}), 400, param="after")


def test_unknown_response_is_404(server: RunningServer) -> None:
    assert_error(httpx.get(f"{server.base_url}/responses/resp_nope/input_items"), 404)


def test_tool_items_are_listed_strictly(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="unused")
    response = client.responses.create(
        model="m",
        input=[{"role": "user", "content": "go"},
               {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
               {"type": "function_call_output", "call_id": "call_1", "output": "1"},
               {"type": "custom_tool_call", "call_id": "call_2", "name": "g", "input": "raw"},
               {"type": "custom_tool_call_output", "call_id": "call_2", "output": "2"}],
    )
    body = page(server, response.id, order="asc")
    assert [item["type"] for item in body["data"]] == [
        "message", "function_call", "function_call_output", "custom_tool_call", "custom_tool_call_output"
    ]
    for item in body["data"]:
        _no_extras(ITEMS.validate_python(item), f"input_item {item['type']}")
