"""`background: true` over HTTP: returns at once, retrievable while running, cancellable, resumable as SSE,
and retrievable once complete; background needs `store`; only background responses can be cancelled."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import BadRequestError, OpenAI

from .support import (
    RunningServer,
    assert_error,
    check_output_indices,
    check_sequence_numbers,
    serve_script,
    sse_lines_to_events,
    validate_response,
    validate_sse_event,
)

SLOW_TEXT = "slow " * 400  # 500 tokens at 20 tokens/s: runs for many seconds unless cancelled
QUICK_TEXT = "A background answer that streams for about half a second at two hundred tokens a second. " * 4


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve_script(tmp_path_factory.mktemp("slow"), [{"text": SLOW_TEXT}], tokens_per_second=20) as running:
        yield running


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve_script(tmp_path_factory.mktemp("quick"), [{"text": QUICK_TEXT}], tokens_per_second=200) as running:
        yield running


def wait_for_status(client: OpenAI, response_id: str, statuses: set[str], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        response = client.responses.retrieve(response_id)
        if response.status in statuses or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_background_returns_at_once_and_can_be_cancelled(slow: RunningServer) -> None:
    client = OpenAI(base_url=slow.base_url, api_key="unused")
    started = time.monotonic()
    response = client.responses.create(model="m", input="take your time", background=True)
    assert time.monotonic() - started < 5
    assert response.status in ("queued", "in_progress")
    assert response.background is True and response.output == [] and response.usage is None
    validate_response(httpx.get(f"{slow.base_url}/responses/{response.id}").json())

    running = wait_for_status(client, response.id, {"in_progress"})
    assert running.status == "in_progress" and running.id == response.id
    [item] = client.responses.input_items.list(response.id).data
    assert item.type == "message"

    cancelled = client.responses.cancel(response.id)
    assert cancelled.status == "cancelled" and cancelled.id == response.id
    assert time.monotonic() - started < 15  # it did not run to the end
    after = client.responses.retrieve(response.id)
    assert after.status == "cancelled"
    validate_response(after.to_dict())
    # Cancelling again is harmless; the response stays cancelled.
    assert client.responses.cancel(response.id).status == "cancelled"


def test_delete_of_a_running_background_response(slow: RunningServer) -> None:
    client = OpenAI(base_url=slow.base_url, api_key="unused")
    response = client.responses.create(model="m", input="never mind", background=True)
    raw = httpx.delete(f"{slow.base_url}/responses/{response.id}")
    assert raw.status_code == 200 and raw.json() == {"id": response.id, "object": "response", "deleted": True}
    assert_error(httpx.get(f"{slow.base_url}/responses/{response.id}"), 404)


def test_completed_background_response_is_retrievable(quick: RunningServer) -> None:
    client = OpenAI(base_url=quick.base_url, api_key="unused")
    response = client.responses.create(model="m", input="hi", background=True, metadata={"job": "1"})
    assert response.status in ("queued", "in_progress")
    done = wait_for_status(client, response.id, {"completed"})
    assert done.status == "completed" and done.output_text == QUICK_TEXT
    assert done.background is True and done.metadata == {"job": "1"}
    assert done.usage is not None and done.usage.output_tokens > 0
    assert [item.type for item in client.responses.input_items.list(response.id)] == ["message"]
    # A completed background response can be continued and no longer cancelled into another state.
    assert client.responses.cancel(response.id).status == "completed"
    follow = client.responses.create(model="m", input="and then?", previous_response_id=response.id)
    assert follow.output_text == "done"  # past the script's end: the context held the background answer


def test_background_stream_and_resume(quick: RunningServer) -> None:
    client = OpenAI(base_url=quick.base_url, api_key="unused")
    events = [e.to_dict() for e in client.responses.create(model="m", input="hi", background=True, stream=True)]
    for event in events:
        validate_sse_event(event)
    check_sequence_numbers(events)
    check_output_indices(events)
    assert [e["type"] for e in events[:3]] == ["response.created", "response.queued", "response.in_progress"]
    assert events[0]["response"]["status"] == "queued" and events[-1]["type"] == "response.completed"

    response = client.responses.create(model="m", input="hi", background=True)
    url = f"{quick.base_url}/responses/{response.id}"
    assert_error(httpx.get(url, params={"stream": "true", "starting_after": "x"}), 400, param="starting_after")
    with httpx.stream("GET", url, params={"stream": "true", "starting_after": "2"}, timeout=30) as raw:
        assert raw.status_code == 200
        resumed = sse_lines_to_events(raw.iter_lines())
    assert resumed[0]["sequence_number"] == 3
    assert [e["sequence_number"] for e in resumed] == list(range(3, 3 + len(resumed)))
    assert resumed[-1]["type"] == "response.completed" and resumed[-1]["response"]["id"] == response.id


def test_background_requires_store(quick: RunningServer) -> None:
    client = OpenAI(base_url=quick.base_url, api_key="unused")
    with pytest.raises(BadRequestError) as caught:
        client.responses.create(model="m", input="hi", background=True, store=False)
    assert caught.value.param == "background"


def test_cancel_of_a_foreground_response_is_400(quick: RunningServer) -> None:
    client = OpenAI(base_url=quick.base_url, api_key="unused")
    response = client.responses.create(model="m", input="hi")
    assert_error(httpx.post(f"{quick.base_url}/responses/{response.id}/cancel"), 400)
    assert client.responses.retrieve(response.id).status == "completed"
