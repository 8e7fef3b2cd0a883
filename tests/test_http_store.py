"""Persistence over HTTP, on SQLite and on PostgreSQL: `store: true` responses outlive the server process;
`store: false` responses are never written; delete removes a response for good."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from openai import NotFoundError, OpenAI

from .store_support import STORED_KINDS, StoreUnderTest, store_for
from .support import assert_error, serve_script

TURNS = [{"text": f"stored answer {k}"} for k in range(6)]


@pytest.fixture(params=STORED_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreUnderTest:
    return store_for(request.param, request, tmp_path)


def test_stored_chain_survives_a_restart(tmp_path: Path, store: StoreUnderTest) -> None:
    with serve_script(tmp_path, TURNS, "--store", store.spec) as server:
        client = OpenAI(base_url=server.base_url, api_key="unused")
        first = client.responses.create(
            model="m", input=[{"type": "message", "id": "msg_kept_1", "role": "user", "content": "one"}],
            metadata={"run": "restart"},
        )
        second = client.responses.create(model="m", input="two", previous_response_id=first.id)
        assert second.output_text == "stored answer 1"
        before = client.responses.retrieve(second.id).to_dict()
        # SIGTERM: uvicorn shuts down gracefully, then re-raises the signal (hence -15).
        assert server.stop() in (0, -15)
    assert second.id.encode() in store.written()

    with serve_script(tmp_path, TURNS, "--store", store.spec) as server:
        client = OpenAI(base_url=server.base_url, api_key="unused")
        assert client.responses.retrieve(second.id).to_dict() == before
        restored_first = client.responses.retrieve(first.id)
        assert restored_first.metadata == {"run": "restart"} and restored_first.output_text == "stored answer 0"
        [item] = client.responses.input_items.list(first.id).data
        assert item.id == "msg_kept_1"
        [item] = client.responses.input_items.list(second.id).data
        assert item.type == "message" and item.content[0].text == "two"  # type: ignore[union-attr]
        # The chain continues from the store: the model sees both earlier answers.
        third = client.responses.create(model="m", input="three", previous_response_id=second.id)
        assert third.output_text == "stored answer 2"
        # An item stored before the restart can still be referenced.
        ref = client.responses.create(model="m", input=[{"type": "item_reference", "id": "msg_kept_1"}])
        assert ref.output_text == "stored answer 0"


def test_store_false_is_never_written(tmp_path: Path, store: StoreUnderTest) -> None:
    with serve_script(tmp_path, TURNS, "--store", store.spec) as server:
        client = OpenAI(base_url=server.base_url, api_key="unused")
        kept = client.responses.create(model="m", input="keep me")
        secret = client.responses.create(
            model="m", store=False,
            input=[{"type": "message", "id": "msg_secret_input", "role": "user", "content": "zz-secret-zz"}],
        )
        streamed = [e for e in client.responses.create(model="m", input="zz-secret-zz", store=False, stream=True)]
        streamed_id = streamed[-1].response.id  # type: ignore[union-attr]
        assert secret.store is False and secret.status == "completed"
        for response_id in (secret.id, streamed_id):
            with pytest.raises(NotFoundError):
                client.responses.retrieve(response_id)
            assert_error(httpx.get(f"{server.base_url}/responses/{response_id}/input_items"), 404)
        assert client.responses.retrieve(kept.id).id == kept.id
        # Once a later stored response is written (on disk, in the WAL), any write that was coming has landed.
        marker = client.responses.create(model="m", input="marker")
        deadline = time.monotonic() + 10
        while marker.id.encode() not in store.written() and time.monotonic() < deadline:
            time.sleep(0.05)
        live = store.written()
        server.stop()
    secrets = (secret.id, streamed_id, secret.output[0].id, "msg_secret_input", "zz-secret-zz")
    for data in (live, store.written()):
        assert kept.id.encode() in data and marker.id.encode() in data
        for secret_bytes in secrets:
            assert secret_bytes and secret_bytes.encode() not in data, secret_bytes


def test_delete_then_404(tmp_path: Path, store: StoreUnderTest) -> None:
    with serve_script(tmp_path, TURNS, "--store", store.spec) as server:
        client = OpenAI(base_url=server.base_url, api_key="unused")
        response = client.responses.create(model="m", input="short-lived")
        raw = httpx.delete(f"{server.base_url}/responses/{response.id}")
        assert raw.status_code == 200
        assert raw.json() == {"id": response.id, "object": "response", "deleted": True}
        with pytest.raises(NotFoundError):
            client.responses.retrieve(response.id)
        assert_error(httpx.get(f"{server.base_url}/responses/{response.id}/input_items"), 404)
        assert_error(httpx.delete(f"{server.base_url}/responses/{response.id}"), 404)
        continued = httpx.post(server.base_url + "/responses",
                               json={"model": "m", "input": "x", "previous_response_id": response.id})
        assert_error(continued, 400, code="previous_response_not_found", param="previous_response_id")
        other = client.responses.create(model="m", input="stays")
        client.responses.delete(other.id)  # the SDK's delete returns nothing on success
        server.stop()
    # Deleted after restart too.
    with serve_script(tmp_path, TURNS, "--store", store.spec) as server:
        for response_id in (response.id, other.id):
            assert_error(httpx.get(f"{server.base_url}/responses/{response_id}"), 404)


def test_unknown_response_is_404(tmp_path: Path) -> None:
    with serve_script(tmp_path, TURNS) as server:
        error = assert_error(httpx.get(f"{server.base_url}/responses/resp_missing"), 404)
        assert "resp_missing" in error["message"]
        assert_error(httpx.delete(f"{server.base_url}/responses/resp_missing"), 404)
        assert_error(httpx.post(f"{server.base_url}/responses/resp_missing/cancel"), 404)
