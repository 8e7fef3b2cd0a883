"""Bearer-key auth over HTTP: missing and wrong keys are 401; what one key stored is invisible to another
on every route and every hop; a server without keys is open."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openai import AuthenticationError, NotFoundError, Omit, OpenAI

from .support import RunningServer, ScriptedServer, assert_error, serve_script

KEY_A = "sk-tether-key-alpha-0001"
KEY_B = "sk-tether-key-bravo-0002"
TURNS = [{"text": f"auth turn {k}"} for k in range(4)]


SERVER = ScriptedServer(TURNS, "--api-key", KEY_A, "--api-key", KEY_B)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def stored(server: RunningServer) -> Any:
    """A response stored by key A, with an input item of a known id."""
    client = OpenAI(base_url=server.base_url, api_key=KEY_A)
    return client.responses.create(
        model="m", input=[{"type": "message", "id": "msg_owned_by_a", "role": "user", "content": "mine"}]
    )


def test_no_key_is_401(server: RunningServer) -> None:
    for method, path in [("POST", "/responses"), ("GET", "/models"), ("GET", "/responses/resp_x"),
                         ("GET", "/responses/resp_x/input_items"), ("DELETE", "/responses/resp_x"),
                         ("POST", "/responses/input_tokens"), ("POST", "/responses/compact")]:
        raw = httpx.request(method, server.base_url + path, json={"model": "m", "input": "hi"})
        assert_error(raw, 401, code="missing_api_key")
    raw = httpx.post(server.base_url + "/responses", json={"model": "m", "input": "hi"},
                     headers={"Authorization": "Basic abc"})
    assert_error(raw, 401)
    with pytest.raises(AuthenticationError) as caught:  # the SDK with its Authorization header left out
        OpenAI(base_url=server.base_url, api_key="unused").responses.create(
            model="m", input="hi", extra_headers={"Authorization": Omit()}
        )
    assert caught.value.status_code == 401 and caught.value.code == "missing_api_key"


def test_wrong_key_is_401_invalid_api_key(server: RunningServer) -> None:
    client = OpenAI(base_url=server.base_url, api_key="sk-wrong-key-123456")
    with pytest.raises(AuthenticationError) as caught:
        client.responses.create(model="m", input="hi")
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    error = assert_error(httpx.get(server.base_url + "/models", headers=bearer("sk-wrong-key-123456")), 401,
                         code="invalid_api_key")
    assert "sk-wrong-key-123456" not in error["message"]  # the key is never echoed whole


def test_both_keys_work(server: RunningServer) -> None:
    for key in (KEY_A, KEY_B):
        client = OpenAI(base_url=server.base_url, api_key=key)
        assert client.responses.create(model="m", input="hi").output_text == "auth turn 0"


def test_owner_reads_its_own(server: RunningServer, stored: Any) -> None:
    client = OpenAI(base_url=server.base_url, api_key=KEY_A)
    assert client.responses.retrieve(stored.id).id == stored.id
    assert [item.id for item in client.responses.input_items.list(stored.id)] == ["msg_owned_by_a"]
    follow = client.responses.create(model="m", input="more", previous_response_id=stored.id)
    assert follow.output_text == "auth turn 1"


def test_other_key_cannot_see_it(server: RunningServer, stored: Any) -> None:
    other = OpenAI(base_url=server.base_url, api_key=KEY_B)
    with pytest.raises(NotFoundError):
        other.responses.retrieve(stored.id)
    with pytest.raises(NotFoundError):
        other.responses.input_items.list(stored.id)
    url = f"{server.base_url}/responses/{stored.id}"
    assert_error(httpx.get(url, headers=bearer(KEY_B)), 404)
    assert_error(httpx.get(url + "/input_items", headers=bearer(KEY_B)), 404)
    assert_error(httpx.delete(url, headers=bearer(KEY_B)), 404)
    assert_error(httpx.post(url + "/cancel", headers=bearer(KEY_B)), 404)
    chained = httpx.post(server.base_url + "/responses", headers=bearer(KEY_B),
                         json={"model": "m", "input": "x", "previous_response_id": stored.id})
    assert_error(chained, 400, code="previous_response_not_found", param="previous_response_id")
    counted = httpx.post(server.base_url + "/responses/input_tokens", headers=bearer(KEY_B),
                         json={"model": "m", "input": "x", "previous_response_id": stored.id})
    assert_error(counted, 400, code="previous_response_not_found", param="previous_response_id")
    referenced = httpx.post(server.base_url + "/responses", headers=bearer(KEY_B),
                            json={"model": "m", "input": [{"type": "item_reference", "id": "msg_owned_by_a"}]})
    assert_error(referenced, 400, param="input[0].id")
    # Key B's failed delete left it alone.
    assert OpenAI(base_url=server.base_url, api_key=KEY_A).responses.retrieve(stored.id).id == stored.id


def test_other_key_cannot_continue_a_chain_through_a_foreign_hop(server: RunningServer) -> None:
    a = OpenAI(base_url=server.base_url, api_key=KEY_A)
    root = a.responses.create(model="m", input="root")
    child = a.responses.create(model="m", input="child", previous_response_id=root.id)
    chained = httpx.post(server.base_url + "/responses", headers=bearer(KEY_B),
                         json={"model": "m", "input": "x", "previous_response_id": child.id})
    assert_error(chained, 400, code="previous_response_not_found")
    assert a.responses.create(model="m", input="x", previous_response_id=child.id).output_text == "auth turn 2"


def test_open_server_without_keys(tmp_path: Any) -> None:
    with serve_script(tmp_path, TURNS) as server:
        raw = httpx.post(server.base_url + "/responses", json={"model": "m", "input": "hi"})
        assert raw.status_code == 200 and raw.json()["output"][0]["content"][0]["text"] == "auth turn 0"
        # Any key, or none, is the same (public) owner.
        response_id = raw.json()["id"]
        assert OpenAI(base_url=server.base_url, api_key="anything").responses.retrieve(response_id).id == response_id
        assert httpx.get(server.base_url + "/models").status_code == 200
