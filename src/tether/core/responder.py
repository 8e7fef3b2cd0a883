"""The turn engine: one create request in, its stream of Responses events out, for every transport.

`TurnEngine.prepare` does everything that can fail before a response exists (resolving item
references, attaching a backend session) and raises `APIError`; `TurnEngine.run` yields the events.
Work the client does not wait for (persisting, metrics) runs after the terminal event was consumed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..api.errors import invalid
from ..api.events import EventSequencer
from ..api.ids import new_id
from ..api.items import Item
from ..api.request import CreateRequest
from ..api.response import Usage, build_response
from ..backends.base import (
    Backend,
    BackendError,
    BackendSession,
    Finished,
    GenerationParams,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
)
from ..store.base import StoredResponse
from .assembler import OutputAssembler
from .book import ResponseBook
from .context import EMPTY, Context
from .metrics import METRICS
from .state import ResponseState

log = logging.getLogger("tether.turn")
Event = dict[str, Any]


@dataclass(slots=True)
class Turn:
    """One response being made."""

    request: CreateRequest
    owner: str
    response_id: str
    created_at: int
    input_items: list[Item]
    context: Context  # parent context + this turn's input
    session: BackendSession
    session_items: list[Item]  # what the session has not seen yet
    received_at: float
    transport: str
    parent_bytes: int = 0
    snapshot: dict[str, Any] = field(default_factory=dict)
    result: ResponseState | None = None
    model_seconds: float = 0.0

    @property
    def status(self) -> str:
        return str(self.snapshot.get("status", "queued"))


def generation_params(request: CreateRequest) -> GenerationParams:
    offered = request.offered_tools
    choice = request.tool_choice
    if choice.allowed is not None:
        offered = tuple(tool for tool in offered if tool.name in choice.allowed)
    if choice.mode == "none":
        offered = ()
    return GenerationParams(
        model=request.model,
        instructions=request.instructions,
        tools=offered,
        tool_choice=choice,
        parallel_tool_calls=request.parallel_tool_calls,
        max_output_tokens=request.max_output_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        json_schema=request.json_schema,
        truncation=request.truncation,
    )


class TurnEngine:
    def __init__(self, backend: Backend, book: ResponseBook) -> None:
        self.backend = backend
        self.book = book

    async def resolve_input(self, request: CreateRequest, owner: str) -> list[Item]:
        """Replace `item_reference`s by the items they name (this owner's stored items only)."""
        items = request.input_items
        if not any(item["type"] == "item_reference" for item in items):
            return items
        resolved: list[Item] = []
        for index, item in enumerate(items):
            if item["type"] != "item_reference":
                resolved.append(item)
                continue
            found = await self.book.get_item(str(item["id"]), owner)
            if found is None:
                raise invalid(f"Item with id '{item['id']}' not found.", f"input[{index}].id")
            resolved.append(found)
        return resolved

    async def prepare(
        self,
        request: CreateRequest,
        owner: str,
        parent: ResponseState | None,
        *,
        fork: bool = False,
        transport: str = "http",
        received_at: float | None = None,
    ) -> Turn:
        """Everything before the response exists. `fork` keeps the parent's session for its own lane."""
        received = received_at if received_at is not None else time.perf_counter()
        input_items = await self.resolve_input(request, owner)
        base = parent.context if parent is not None else EMPTY
        context = base.extend(input_items)
        session: BackendSession | None = None
        if parent is not None and parent.session is not None:
            session = parent.session.fork() if fork else parent.take_session()
        if session is None:
            session = self.backend.new_session()
            session_items = context.to_list()
            METRICS.session_misses.inc()
        else:
            session_items = input_items
            METRICS.session_hits.inc()
        METRICS.items_handed.labels(transport=transport).inc(len(session_items))
        return Turn(
            request=request,
            owner=owner,
            response_id=new_id("resp"),
            created_at=int(time.time()),
            input_items=input_items,
            context=context,
            session=session,
            session_items=session_items,
            received_at=received,
            transport=transport,
            parent_bytes=parent.nbytes if parent is not None else 0,
        )

    async def run(self, turn: Turn) -> AsyncIterator[Event]:
        """Yield the response's events. After the terminal event is consumed: cache state, persist."""
        request = turn.request
        seq = EventSequencer(request.stream_id, request.include_obfuscation)
        first_status = "queued" if request.background else "in_progress"
        turn.snapshot = build_response(request, turn.response_id, turn.created_at, status=first_status)
        yield seq.lifecycle("response.created", turn.snapshot)
        if not request.generate:
            async for event in self._warm_up(turn, seq):
                yield event
        else:
            if request.background:
                yield seq.lifecycle("response.queued", turn.snapshot)
                turn.snapshot = build_response(request, turn.response_id, turn.created_at, status="in_progress")
            yield seq.lifecycle("response.in_progress", turn.snapshot)
            async for event in self._generate(turn, seq):
                yield event
        self._after_terminal(turn)

    async def _warm_up(self, turn: Turn, seq: EventSequencer) -> AsyncIterator[Event]:
        params = generation_params(turn.request)
        prompt_tokens = await turn.session.warm(turn.session_items, params)
        turn.snapshot = build_response(
            turn.request,
            turn.response_id,
            turn.created_at,
            status="completed",
            usage=Usage(input_tokens=prompt_tokens),
            completed_at=int(time.time()),
        )
        turn.result = ResponseState(turn.snapshot, turn.input_items, turn.context, turn.owner, turn.session)
        yield seq.lifecycle("response.completed", turn.snapshot)

    async def _generate(self, turn: Turn, seq: EventSequencer) -> AsyncIterator[Event]:
        request = turn.request
        params = generation_params(request)
        assembler = OutputAssembler(seq, params.tools, request.parallel_tool_calls)
        finished: Finished | None = None
        failure: dict[str, Any] | None = None
        try:
            async for delta in turn.session.generate(turn.session_items, params):
                if isinstance(delta, TextDelta):
                    events = assembler.text(delta)
                elif isinstance(delta, ToolCallDelta):
                    events = assembler.tool_call(delta)
                elif isinstance(delta, ReasoningDelta):
                    events = assembler.reasoning(delta)
                else:
                    finished = delta
                    break
                for event in events:
                    yield event
            if finished is None:
                raise BackendError("The model stopped without finishing its answer.")
        except BackendError as exc:
            failure = {"code": exc.code, "message": str(exc)}
        except (asyncio.CancelledError, GeneratorExit):
            turn.session.broken = True
            raise
        except Exception as exc:
            log.exception("turn %s failed", turn.response_id)
            failure = {"code": "server_error", "message": f"The model backend failed: {type(exc).__name__}."}
        if failure is not None or finished is None:
            turn.session.broken = True
            for event in assembler.close("incomplete"):
                yield event
            turn.snapshot = build_response(
                request, turn.response_id, turn.created_at, status="failed", output=assembler.output, error=failure,
                usage=Usage(),
            )
            yield seq.lifecycle("response.failed", turn.snapshot)
            return
        truncated = finished.reason == "length"
        for event in assembler.close("incomplete" if truncated else "completed"):
            yield event
        turn.model_seconds = finished.model_seconds
        usage = Usage(
            input_tokens=finished.prompt_tokens,
            cached_tokens=finished.cached_tokens,
            output_tokens=finished.output_tokens,
        )
        turn.snapshot = build_response(
            request,
            turn.response_id,
            turn.created_at,
            status="incomplete" if truncated else "completed",
            output=assembler.output,
            usage=usage,
            completed_at=int(time.time()),
            incomplete_reason="max_output_tokens" if truncated else None,
        )
        context = turn.context.extend(assembler.output)
        session = None if turn.session.broken else turn.session
        turn.result = ResponseState(turn.snapshot, turn.input_items, context, turn.owner, session)
        yield seq.lifecycle("response.incomplete" if truncated else "response.completed", turn.snapshot)

    def _after_terminal(self, turn: Turn) -> None:
        """Runs once the client has the terminal event: size the cached state, persist, count."""
        status = turn.status
        if turn.result is not None:
            added = orjson.dumps([turn.input_items, turn.result.response.get("output") or []])
            turn.result.nbytes = turn.parent_bytes + len(added)
        if turn.request.store and status in ("completed", "incomplete", "failed", "cancelled"):
            self.book.persist_later(StoredResponse(turn.snapshot, turn.input_items, turn.owner))
        METRICS.responses.labels(status=status, transport=turn.transport).inc()
        server_seconds = max(0.0, time.perf_counter() - turn.received_at - turn.model_seconds)
        METRICS.turn_server_seconds.labels(transport=turn.transport).observe(server_seconds)
