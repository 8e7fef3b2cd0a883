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
from ..api.errors import APIError, invalid, not_found, previous_response_not_found
from ..api.framing import sse_frame
from ..api.items import Item
from ..api.request import CreateRequest, parse_create
from ..core.metrics import METRICS
from ..core.responder import Turn, generation_params
from ..core.state import ResponseState
from .background import BackgroundRun
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


async def resolve_parent_from_store(state: AppState, request: CreateRequest, owner: str) -> ResponseState | None:
    if request.previous_response_id is None:
        return None
    parent = await state.book.hydrate(request.previous_response_id, owner)
    if parent is None:
        raise previous_response_not_found(request.previous_response_id)
    METRICS.store_hydrations.labels(transport="http").inc()
    return parent


async def create_response(state: AppState, http: Request, owner: str) -> Response:
    received = time.perf_counter()
    body = await read_json(http, state.config.max_body_bytes)
    request = parse_create(body)
    parent = await resolve_parent_from_store(state, request, owner)
    turn = await state.engine.prepare(request, owner, parent, transport="http", received_at=received)
    if request.background:
        run = BackgroundRun(state.engine, state.book, turn)
        if request.stream:
            return StreamingResponse(_sse(run.follow()), media_type="text/event-stream", headers=SSE_HEADERS)
        await run.wait_started()
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
    stream = http.query_params.get("stream", "false").lower() == "true"
    if stream:
        live = state.book.live(response_id, owner)
        if isinstance(live, BackgroundRun):
            after = http.query_params.get("starting_after")
            if after is not None and not after.lstrip("-").isdigit():
                raise invalid("Invalid 'starting_after': expected an integer.", "starting_after")
            events = live.follow(int(after) if after is not None else None)
            return StreamingResponse(_sse(events), media_type="text/event-stream", headers=SSE_HEADERS)
    record = await state.book.get(response_id, owner)
    if record is None:
        raise _response_not_found(response_id)
    if stream:
        raise invalid("Only background responses that are still running can be streamed.", "stream")
    return JSON(record.response)


async def delete_response(state: AppState, owner: str, response_id: str) -> Response:
    live = state.book.live(response_id, owner)
    if isinstance(live, BackgroundRun):
        # Let the cancellation land (it records the response) before deleting, or the record would
        # not be found now and would reappear once the cancelled run persisted it.
        live.cancel()
        await asyncio.wait({live.task})
    elif live is not None:
        live.cancel()
    if not await state.book.delete(response_id, owner):
        raise _response_not_found(response_id)
    return JSON({"id": response_id, "object": "response", "deleted": True})


async def list_input_items(state: AppState, http: Request, owner: str, response_id: str) -> Response:
    query = http.query_params
    limit_raw = query.get("limit", "20")
    if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= 100:
        raise invalid("Invalid 'limit': expected an integer between 1 and 100.", "limit")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid("Invalid 'order': expected 'asc' or 'desc'.", "order")
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
    limit = int(limit_raw)
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
    if isinstance(live, BackgroundRun):
        live.cancel()
        try:
            await live.task
        except BaseException:
            pass
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
    parent = await resolve_parent_from_store(state, request, owner)
    items = await state.engine.resolve_input(request, owner)
    context = (parent.context.to_list() if parent else []) + items
    return context, state.backend.count_tokens(context, generation_params(request))


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
