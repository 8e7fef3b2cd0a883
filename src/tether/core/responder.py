"""The turn engine: one create request in, its stream of Responses events out, for every transport.

`TurnEngine.prepare` does everything that can fail before a response exists (resolving item
references, attaching a backend session) and raises `APIError`; `TurnEngine.run` yields the events.
Before the terminal event: the session takes the turn's output and a `store: true` response is
committed, so an acknowledged response survives a crash. After it (guaranteed, even when the caller
stops reading right after the terminal event): sizing the cached state and accounting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..api.compaction import compact
from ..api.errors import invalid
from ..api.events import EventSequencer
from ..api.ids import new_id
from ..api.items import Item
from ..api.request import CreateRequest
from ..api.response import Usage, build_response, request_echo
from ..api.tool_outputs import check_tool_outputs
from ..backends.base import (
    Backend,
    BackendError,
    BackendSession,
    Delta,
    Finished,
    GenerationParams,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
)
from ..store.base import StoredResponse
from . import turn_log, turn_trace
from .assembler import OutputAssembler
from .book import ResponseBook
from .cache_baseline import diagnose
from .cache_diagnostics import UNAVAILABLE, CacheVerdict
from .connection_cache import ConnectionCache
from .context import EMPTY, Context
from .conversation_settings import model_view, settings_of
from .metrics import METRICS, labelled
from .parents import Parent
from .runner import RUNNER
from .state import ResponseState
from .turn_control import TurnControl, Wake, controlled
from .turn_params import generation_params

__all__ = ["FINAL_STATUSES", "Turn", "TurnEngine", "generation_params"]

log = logging.getLogger("tether.turn")
Event = dict[str, Any]
#: statuses after which a response is final and, with `store: true`, persisted
FINAL_STATUSES = ("completed", "incomplete", "failed", "cancelled")


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
    snapshot: dict[str, Any] = field(default_factory=dict)
    #: the finished response with its context, set when the turn succeeded (a continuation's parent)
    result: ResponseState | None = None
    model_seconds: float = 0.0
    #: interrupt and steer requests (WebSocket turns); None where nothing can reach a running turn
    control: TurnControl | None = None
    #: numbers the response's events; set when the run starts
    seq: EventSequencer | None = None
    #: what the model is asked, with what the conversation set (`turn_params`)
    params: GenerationParams = field(default_factory=lambda: GenerationParams(model=""))
    #: the prompt-cache diagnosis against the parent or the comparison response (`cache_diagnostics`)
    verdict: CacheVerdict = UNAVAILABLE
    #: a `compaction_trigger` turn: the compaction item its output holds, made before the response exists
    compaction: Item | None = None
    #: the client's W3C trace context for this turn (`client_metadata`, else HTTP headers)
    trace_context: turn_trace.TraceContext | None = None
    #: the response this turn continues (None: the conversation starts here)
    parent: ResponseState | None = None

    @property
    def status(self) -> str:
        return str(self.snapshot.get("status", "queued"))

    def record(self) -> StoredResponse:
        running = self.status in ("queued", "in_progress")
        return StoredResponse(self.snapshot, self.input_items, self.owner, placement=self.session.placement,
                              runner=RUNNER if running else None)


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
        parent: Parent | None,
        *,
        transport: str = "http",
        received_at: float | None = None,
        cache: ConnectionCache | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Turn:
        """Everything before the response exists. A fork keeps the parent's session for its own lane.

        `cache` (a WebSocket connection's) is where a `comparison_response_id` is looked for first; `headers`
        (an HTTP request's) may carry the client's trace context."""
        received = received_at if received_at is not None else time.perf_counter()
        input_items = await self.resolve_input(request, owner)
        state = parent.state if parent is not None else None
        base = state.context if state is not None else EMPTY
        context = base.extend(input_items)
        # Before a session is taken, so a refused turn leaves the parent's engine state as it was.
        check_tool_outputs(input_items, base.to_list, state.response.get("output") or () if state else ())
        settings = settings_of(context)
        params = generation_params(request, settings)
        if request.tool_choice.mode == "required" and not params.tools:
            raise invalid("'tool_choice' requires a tool, but no function or custom tools were given.", "tool_choice")
        compaction = None
        if input_items and input_items[-1]["type"] == "compaction_trigger":
            # Made now, so a context too large to compact is a 400 rather than a failed response.
            compaction = compact(context.to_list()[:-1], 0)["output"][-1]
        verdict = await diagnose(request, request_echo(request).fields, context, owner, parent, self.book, cache)
        session: BackendSession | None = None
        if state is not None and state.session is not None:
            session = state.session.fork() if parent is not None and parent.fork else state.take_session()
        if session is None:
            # A conversation the engine held elsewhere (an upstream replica) goes back there.
            session = self.backend.session_for(state.placement if state is not None else None)
            session_items = model_view(context.to_list(), 0, settings.leading)
            METRICS.session_misses.inc()
        else:
            session_items = model_view(input_items, len(base), settings.leading)
            METRICS.session_hits.inc()
        labelled(METRICS.items_handed, transport).inc(len(session_items))
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
            params=params,
            verdict=verdict,
            compaction=compaction,
            trace_context=(turn_trace.trace_context_of(request.client_metadata.values, headers)
                           if turn_trace.tracer() is not None else None),
            parent=state,
        )

    async def run(self, turn: Turn) -> AsyncGenerator[Event, None]:
        """Yield the response's events, the terminal one last."""
        request = turn.request
        seq = turn.seq = EventSequencer(request.stream_id, request.include_obfuscation)
        try:
            first_status = "queued" if request.background else "in_progress"
            turn.snapshot = build_response(request, turn.response_id, turn.created_at, status=first_status)
            yield seq.lifecycle("response.created", turn.snapshot)
            if not request.generate and turn.compaction is None:
                await self._warm_up(turn)
            else:
                if request.background:
                    yield seq.lifecycle("response.queued", turn.snapshot)
                    turn.snapshot = build_response(request, turn.response_id, turn.created_at, status="in_progress")
                yield seq.lifecycle("response.in_progress", turn.snapshot)
                output = self._generate(turn, seq) if turn.compaction is None else self._compact(turn, seq)
                async for event in output:
                    yield event
            await self._commit(turn)
            yield seq.lifecycle(_terminal_type(turn.status), turn.snapshot)
        except asyncio.CancelledError:
            turn.session.broken = True
            if request.background:
                await self.record_cancelled(turn)
            raise
        finally:
            self._account(turn)

    async def record_cancelled(self, turn: Turn) -> None:
        """A run stopped before its end (a cancelled background response, a shutdown): recorded as
        `cancelled` when it was to be stored, so its id never reads as running or missing."""
        turn.session.broken = True
        turn.result = None
        if turn.status in FINAL_STATUSES:
            return
        turn.snapshot = build_response(
            turn.request, turn.response_id, turn.created_at, status="cancelled", completed_at=int(time.time())
        )
        if turn.request.store:
            try:
                await self.book.save(turn.record())
            except Exception:
                log.exception("could not record cancelled response %s", turn.response_id)

    def _diagnostics(self, turn: Turn, input_tokens: int) -> dict[str, Any]:
        """The final Response's `prompt_cache_diagnostics`; the reusable prefix of an input divergence is
        counted by the backend (only then: a hit or a settings miss needs no count)."""
        verdict = turn.verdict
        prefix = self.backend.count_tokens(list(verdict.prefix), turn.params) if verdict.needs_prefix_tokens else 0
        return verdict.diagnostics(input_tokens, prefix)

    async def _warm_up(self, turn: Turn) -> None:
        prompt_tokens = await turn.session.warm(turn.session_items, turn.params)
        turn.snapshot = build_response(
            turn.request,
            turn.response_id,
            turn.created_at,
            status="completed",
            usage=Usage(input_tokens=prompt_tokens),
            completed_at=int(time.time()),
            prompt_cache_diagnostics=self._diagnostics(turn, prompt_tokens),
        )
        turn.result = ResponseState(turn.snapshot, turn.input_items, turn.context, turn.owner, turn.session,
                                    placement=turn.session.placement)

    async def _compact(self, turn: Turn, seq: EventSequencer) -> AsyncGenerator[Event, None]:
        """A `compaction_trigger` turn: the context is compacted as `POST /v1/responses/compact` does, and
        the output is the compaction item. The session takes the context like a warm-up (the trigger and
        the item are nothing a model reads), so a continuation renders only what comes after."""
        item = turn.compaction
        assert item is not None
        yield seq.item_added(0, item)
        yield seq.compaction_compacting(str(item["id"]), 0)
        prompt_tokens = await turn.session.warm(turn.session_items, turn.params)
        yield seq.item_done(0, item)
        turn.snapshot = build_response(
            turn.request,
            turn.response_id,
            turn.created_at,
            status="completed",
            output=[item],
            usage=Usage(input_tokens=prompt_tokens),
            completed_at=int(time.time()),
            prompt_cache_diagnostics=self._diagnostics(turn, prompt_tokens),
        )
        turn.session.commit([])
        context = turn.context.extend([item])
        turn.result = ResponseState(turn.snapshot, turn.input_items, context, turn.owner, turn.session)

    async def _generate(self, turn: Turn, seq: EventSequencer) -> AsyncGenerator[Event, None]:
        """The model's output events; leaves the final snapshot (and, on success, the result) on `turn`.

        With a `TurnControl` (WebSocket turns) an interrupt stops the generation at once and discards the
        partial item; a steer stops it at a safe boundary (never inside a tool call) and keeps what was
        produced, so the successor continues from it."""
        request = turn.request
        params = turn.params
        assembler = OutputAssembler(seq, params.tools, request.parallel_tool_calls)
        control = turn.control
        stream = turn.session.generate(turn.session_items, params)
        steered_stream = controlled(stream, control) if control is not None else None
        source: AsyncIterator[Delta | Wake] = steered_stream if steered_stream is not None else stream
        finished: Finished | None = None
        failure: dict[str, Any] | None = None
        stopped: str | None = None  # "interrupted" or "steered": the turn ended before the model did
        graceful = False  # the backend agreed to end at its next token (its state stays usable)
        if control is not None:
            control.generating = True
        try:
            async for delta in source:
                if isinstance(delta, Wake):
                    assert control is not None
                    for steer in control.unannounced():
                        yield seq.steer_accepted(steer.id, turn.response_id)
                    if control.stop_reason == "interrupted":
                        yield seq.interrupt_accepted(turn.response_id)
                        stopped = "interrupted"
                        break
                    events: list[Event] = []
                elif isinstance(delta, TextDelta):
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
                if control is not None and control.stop_reason == "steered" and stopped is None:
                    if assembler.open_kind in ("function_call", "custom_tool_call"):
                        continue  # a safe boundary is after the call, never inside its arguments
                    stopped = "steered"
                    graceful = turn.session.stop_soon()
                    if not graceful:
                        break
            if finished is None and stopped is None:
                raise BackendError("The model stopped without finishing its answer.")
        except BackendError as exc:
            failure = {"code": exc.code, "message": str(exc)}
        except (asyncio.CancelledError, GeneratorExit):
            turn.session.broken = True
            raise
        except Exception as exc:
            log.exception("turn %s failed", turn.response_id)
            failure = {"code": "server_error", "message": f"The model backend failed: {type(exc).__name__}."}
        finally:
            if control is not None:
                control.generating = False
            if steered_stream is not None:
                await steered_stream.aclose()
        if failure is not None:
            turn.session.broken = True
            for event in assembler.close("incomplete"):
                yield event
            turn.snapshot = build_response(
                request, turn.response_id, turn.created_at, status="failed", output=assembler.output, error=failure,
                usage=Usage(), prompt_cache_diagnostics=self._diagnostics(turn, 0),
            )
            return
        if stopped == "interrupted":
            discarded = assembler.discard_open()
            if discarded is not None:
                yield seq.item_interrupted(turn.response_id, str(discarded[1]["id"]), discarded[0])
        truncated = finished is not None and finished.reason == "length" and stopped is None
        for event in assembler.close("incomplete" if truncated or stopped else "completed"):
            yield event
        usage = Usage()
        if finished is not None:
            turn.model_seconds = finished.model_seconds
            usage = Usage(
                input_tokens=finished.prompt_tokens,
                cached_tokens=finished.cached_tokens,
                output_tokens=finished.output_tokens,
            )
        reason = stopped or ("max_output_tokens" if truncated else None)
        turn.snapshot = build_response(
            request,
            turn.response_id,
            turn.created_at,
            status="incomplete" if reason else "completed",
            output=assembler.output,
            usage=usage,
            completed_at=int(time.time()),
            incomplete_reason=reason,
            prompt_cache_diagnostics=self._diagnostics(turn, usage.input_tokens),
        )
        session: BackendSession | None = None
        if stopped is not None and not (stopped == "steered" and graceful and finished is not None):
            turn.session.broken = True  # cancelled mid-way: its state no longer matches the output
        if not turn.session.broken:
            turn.session.commit(assembler.output)
            session = turn.session
        context = turn.context.extend(assembler.output)
        turn.result = ResponseState(turn.snapshot, turn.input_items, context, turn.owner, session,
                                    placement=turn.session.placement)

    async def _commit(self, turn: Turn) -> None:
        """Before the terminal event: a `store: true` response is committed to the store. If the store
        fails, the response fails with it rather than being acknowledged and then lost."""
        if not turn.request.store or turn.status not in FINAL_STATUSES:
            return
        try:
            deletions = await self.book.save(turn.record())
        except Exception:
            log.exception("could not persist response %s", turn.response_id)
            turn.session.broken = True
            turn.result = None
            turn.snapshot = build_response(
                turn.request, turn.response_id, turn.created_at, status="failed", output=turn.snapshot.get("output"),
                usage=Usage(), error={"code": "server_error", "message": "The response could not be stored."},
                prompt_cache_diagnostics=turn.snapshot.get("prompt_cache_diagnostics"),
            )
            return
        if turn.result is not None:
            _size(turn)  # now, not after the terminal event: the remembered state is bounded by it
            self.book.remember(turn.result, turn.parent, deletions)

    def _account(self, turn: Turn) -> None:
        """After the terminal event (or the run's end, however it ended): size the cached state, count."""
        _size(turn)
        status = turn.status
        labelled(METRICS.responses, status, turn.transport).inc()
        server_seconds = max(0.0, time.perf_counter() - turn.received_at - turn.model_seconds)
        labelled(METRICS.turn_server_seconds, turn.transport).observe(server_seconds)
        diagnostics = turn.snapshot.get("prompt_cache_diagnostics") or {}
        if diagnostics:
            labelled(METRICS.prompt_cache_diagnostics, diagnostics["type"]).inc()
            if diagnostics["type"] == "cache_miss":
                labelled(METRICS.prompt_cache_misses, diagnostics["reason"]).inc()
        tracer = turn_trace.tracer()
        if tracer is None and not turn_log.log.isEnabledFor(logging.INFO):
            return
        fields = turn_log.turn_fields(
            response_id=turn.response_id, status=status, transport=turn.transport,
            lane=turn.request.stream_id, usage=turn.snapshot.get("usage"), server_seconds=server_seconds,
            model_seconds=turn.model_seconds, replica=turn.session.placement,
            client_turn_id=turn.request.client_metadata.turn_id,
            cache=diagnostics.get("reason") or diagnostics.get("type"),
        )
        turn_log.log_turn(fields)
        if tracer is not None:
            end_ns = time.time_ns()
            start_ns = end_ns - int((time.perf_counter() - turn.received_at) * 1e9)
            try:
                tracer.record(fields, turn.trace_context, start_ns, end_ns)
            except Exception:  # telemetry never fails a turn
                log.exception("could not record the trace span of %s", turn.response_id)


def _size(turn: Turn) -> None:
    """The result's approximate memory (its context's JSON bytes), for the caches' bounds."""
    if turn.result is not None and not turn.result.nbytes:  # a result's is 0 until sized here, once
        added = orjson.dumps([turn.input_items, turn.result.response.get("output") or []])
        turn.result.nbytes = (turn.parent.nbytes if turn.parent is not None else 0) + len(added)


def _terminal_type(status: str) -> str:
    return {"completed": "response.completed", "incomplete": "response.incomplete"}.get(status, "response.failed")
