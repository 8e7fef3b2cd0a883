"""The HTTP routes of the Responses API: create (JSON, SSE, background), retrieve, delete,
input items, cancel, input token counts, compaction, models and health."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..api.compaction import compact
from ..api.errors import APIError, invalid, not_found
from ..api.framing import sse_frame
from ..api.items import Item
from ..api.query import bool_param, choice_param, int_param
from ..api.request import parse_create
from ..core.background import BackgroundRun
from ..core.parents import resolve_parent
from ..core.responder import Turn
from ..core.turn_params import counted_context
from .responses import JSON
from .state import AppState

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    if not body:
        raise invalid("The request body is empty; expected a JSON object.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid(
            f"We could not parse the JSON body of your request ({exc.args[0] if exc.args else 'invalid JSON'})."
        ) from None


def _too_large(limit: int) -> APIError:
    return APIError(f"Request body too large: the limit is {limit} bytes.", status=413, code="request_too_large")


def _response_not_found(response_id: str) -> APIError:
    return not_found(f"Response with id '{response_id}' not found.")


async def create_response(state: AppState, http: Request, owner: str) -> Response:
    received = time.perf_counter()
    body = await read_json(http, state.config.max_body_bytes)
    request = parse_create(body)
    parent = await resolve_parent(request.previous_response_id, owner, state.book, transport="http")
    turn = await state.engine.prepare(request, owner, parent, transport="http", received_at=received,
                                      headers=http.headers)
    if request.background:
        run = await BackgroundRun.start(state.engine, state.book, turn)
        if request.stream:
            return StreamingResponse(_sse(run.follow()), media_type="text/event-stream", headers=SSE_HEADERS)
        return JSON(turn.snapshot)
    if request.stream:
        return StreamingResponse(_sse(state.engine.run(turn)), media_type="text/event-stream", headers=SSE_HEADERS)
    return await _run_to_end(state, turn, http)


async def _run_to_end(state: AppState, turn: Turn, http: Request) -> Response:
    """Run the turn for a JSON answer; a client that goes away cancels its generation."""

    async def consume() -> None:
        async with contextlib.aclosing(state.engine.run(turn)) as events:
            async for _event in events:
                pass

    run = asyncio.create_task(consume())
    gone = asyncio.create_task(_client_gone(http))
    await asyncio.wait({run, gone}, return_when=asyncio.FIRST_COMPLETED)
    if run.done():
        gone.cancel()
        run.result()
        return JSON(turn.snapshot)
    run.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await run
    return Response(status_code=499)


async def _client_gone(http: Request) -> None:
    """Returns when the client disconnects (the body was read already, so only that message is left)."""
    while (await http.receive())["type"] != "http.disconnect":
        pass


async def _sse(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for event in events:
        yield sse_frame(event)


async def retrieve_response(state: AppState, http: Request, owner: str, response_id: str) -> Response:
    stream = bool_param(http.query_params, "stream", default=False)
    # Checked whether or not the response is live, so a bad value is a 400 either way. Never
    # negative: a negative index would replay the run's events from its end, again and again.
    after = int_param(http.query_params, "starting_after", low=0)
    if stream:
        live = state.book.live(response_id, owner)
        if live is not None:
            events = live.follow(after)
            return StreamingResponse(_sse(events), media_type="text/event-stream", headers=SSE_HEADERS)
    record = await state.book.get(response_id, owner)
    if record is None:
        raise _response_not_found(response_id)
    if stream:
        raise invalid("Only background responses that are still running can be streamed.", "stream")
    return JSON(record.response)


async def delete_response(state: AppState, owner: str, response_id: str) -> Response:
    live = state.book.live(response_id, owner)
    if live is not None:
        # Let the cancellation land (it records the response) before deleting, or the record would
        # reappear once the cancelled run persisted it.
        await live.cancel()
    if not await state.book.delete(response_id, owner):
        raise _response_not_found(response_id)
    return JSON({"id": response_id, "object": "response", "deleted": True})


async def list_input_items(state: AppState, http: Request, owner: str, response_id: str) -> Response:
    query = http.query_params
    limit = int_param(query, "limit", low=1, high=100, default=20)
    order = choice_param(query, "order", ("asc", "desc"), default="desc")
    record = await state.book.get(response_id, owner)
    if record is None:
        raise _response_not_found(response_id)
    items = list(record.input_items)
    if order == "desc":
        items.reverse()
    after = query.get("after")
    if after:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise invalid(f"Invalid 'after': no input item with id '{after}' in this response.", "after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return JSON(
        {
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": len(items) > limit,
        }
    )


async def cancel_response(state: AppState, owner: str, response_id: str) -> Response:
    live = state.book.live(response_id, owner)
    if live is not None:
        await live.cancel()
        return JSON(live.snapshot)
    record = await state.book.get(response_id, owner)
    if record is None:
        raise _response_not_found(response_id)
    if not record.response.get("background"):
        raise invalid("Only responses created with 'background: true' can be cancelled.")
    return JSON(record.response)


async def _counted_context(state: AppState, body: Any, owner: str) -> tuple[list[Item], int]:
    """The whole context a create body names (stored parent + its input) and its prompt tokens."""
    request = parse_create(body)
    parent = await resolve_parent(request.previous_response_id, owner, state.book, transport="http")
    items = await state.engine.resolve_input(request, owner)
    context = (parent.state.context.to_list() if parent else []) + items
    return context, state.backend.count_tokens(*counted_context(request, context))


async def count_input_tokens(state: AppState, http: Request, owner: str) -> Response:
    body = await read_json(http, state.config.max_body_bytes)
    if isinstance(body, dict) and "model" not in body:
        body = {**body, "model": "tether"}  # `model` is optional on this endpoint
    _, tokens = await _counted_context(state, body, owner)
    return JSON({"object": "response.input_tokens", "input_tokens": tokens})


async def compact_conversation(state: AppState, http: Request, owner: str) -> Response:
    context, tokens = await _counted_context(state, await read_json(http, state.config.max_body_bytes), owner)
    return JSON(compact(context, tokens))


def list_models(state: AppState) -> Response:
    created = int(time.time())
    data = [
        {"id": model, "object": "model", "created": created, "owned_by": "tether"}
        for model in state.backend.model_ids()
    ]
    return JSON({"object": "list", "data": data})
