"""`ResponsesConnection`: every rule of one WebSocket-mode connection, without the socket.

It holds the lanes (one FIFO each), the in-flight limit, the named-lane limit, the bound on what the
client may have queued, the connection cache, the lifetime state, parent resolution, the fork decision
and the eviction rules. It is driven by decoded client events (`receive`) and by its transport telling
it that a turn ended (`finished`) or that the lifetime is up (`expire`); each call hands back what to
do: `Send` an event, `Run` a turn (iterate its events and send them), or `Close` the socket. The
transport (`server/ws.py`) only pumps frames and runs what it is told.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from ..api.client_events import (
    ClientEvent,
    CreateEvent,
    InterruptEvent,
    InvalidEvent,
    ProcessedEvent,
    SteerEvent,
)
from ..api.client_metadata import response_metadata_event
from ..api.errors import APIError, invalid
from ..api.events import interrupt_failed, steer_failed
from ..api.steering import parse_steer_input
from .connection_cache import CacheBudget, ConnectionCache, LaneKey
from .metrics import METRICS
from .parents import Parent, resolve_parent
from .responder import Turn, TurnEngine
from .turn_control import MAX_PENDING_STEERS, Steer, TurnControl

log = logging.getLogger("tether.connection")
Event = dict[str, Any]
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
#: finished responses a connection remembers, to tell "already completed" from "not found"
ENDED_REMEMBERED = 256


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The bounds of one connection (the protocol's numbers by default)."""

    max_in_flight: int = 16
    max_named_lanes: int = 32
    lifetime_seconds: float = 3600.0
    #: creates the client may have waiting (not yet running) before the transport stops reading
    max_queued: int = 64
    #: bytes of those waiting frames before the transport stops reading (one frame always fits)
    max_queued_bytes: int = 16 * 1024 * 1024
    cache_bytes: int = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Send:
    event: Event


@dataclass(frozen=True, slots=True)
class Run:
    turn: LaneTurn


@dataclass(frozen=True, slots=True)
class Close:
    code: int


Outcome = Send | Run | Close


@dataclass(slots=True)
class Lane:
    """A `stream_id` (or the default lane, `None`): its waiting creates and the one running."""

    key: LaneKey
    waiting: deque[Waiting] = field(default_factory=deque)
    running: LaneTurn | None = None


@dataclass(slots=True)
class Waiting:
    """A create waiting on its lane; a steering successor carries the steers it commits."""

    arrival: int
    create: CreateEvent
    steers: list[Steer] = field(default_factory=list)


class LaneTurn:
    """One create on its lane: resolves its parent, prepares and runs the turn, yields its events.

    What happens to the cache afterwards is decided by the connection in `finished`."""

    def __init__(self, connection: ResponsesConnection, lane: Lane, create: CreateEvent,
                 steers: list[Steer] | None = None) -> None:
        self.connection = connection
        self.lane = lane
        self.create = create
        #: the steering input this turn commits (a successor): at its `response.created`
        self.steers = steers or []
        self.parent: Parent | None = None
        self.turn: Turn | None = None
        #: the create was refused before a response existed (validation, parent, references)
        self.refused = False

    async def events(self) -> AsyncGenerator[Event, None]:
        connection = self.connection
        create = self.create
        if create.request is None:
            assert create.error is not None
            self.refused = True
            yield create.error.ws_event(self.lane.key)
            return
        request = create.request
        try:
            self.parent = await resolve_parent(
                request.previous_response_id, connection.owner, connection.engine.book,
                transport="ws", cache=connection.cache, lane=self.lane.key,
            )
            self.turn = await connection.engine.prepare(
                request, connection.owner, self.parent, transport="ws", received_at=create.received_at,
                cache=connection.cache,
            )
        except APIError as exc:
            self.refused = True
            for steer in self.steers:  # a successor that could not be made returns its input
                yield steer_failed(steer.previous_response_id, steer.raw_input, "successor_creation_failed",
                                   f"The successor response could not be created: {exc.message}",
                                   steer_id=steer.id, stream_id=self.lane.key)
            if not self.steers:
                yield exc.ws_event(self.lane.key)
            return
        self.turn.control = TurnControl()
        connection.running[self.turn.response_id] = self
        metadata = response_metadata_event(request.client_metadata, self.lane.key)
        if metadata is not None:
            yield metadata  # Codex's per-turn state, before the turn's `response.created`
        async for event in connection.engine.run(self.turn):
            yield event


class ResponsesConnection:
    def __init__(self, engine: TurnEngine, owner: str, limits: ConnectionLimits, budget: CacheBudget) -> None:
        self.engine = engine
        self.owner = owner
        self.limits = limits
        self.cache = ConnectionCache(limits.cache_bytes, budget)
        self.lanes: dict[LaneKey, Lane] = {}
        self.in_flight = 0
        self.queued = 0
        self.queued_bytes = 0
        self._arrivals = 0
        #: set at the lifetime limit and at shutdown: new creates are refused, accepted ones finish
        self.expiring = False
        self._limit_pending = False
        self.closed = False
        #: responses of this connection now running, by id (what an interrupt or a steer may target)
        self.running: dict[str, LaneTurn] = {}
        #: ids of responses that ran to their end here, newest last (bounded)
        self.ended: OrderedDict[str, None] = OrderedDict()
        #: accepted steering input waiting for the client's continuation of a response that stopped
        #: for tool output, by that response's id
        self.pending_steers: dict[str, list[Steer]] = {}

    # -- what the transport asks -------------------------------------------------------------
    @property
    def has_room(self) -> bool:
        """Whether the transport may read another frame (backpressure on a client that floods)."""
        if self.queued == 0:
            return True
        return self.queued < self.limits.max_queued and self.queued_bytes < self.limits.max_queued_bytes

    @property
    def idle(self) -> bool:
        return self.in_flight == 0 and self.queued == 0

    def receive(self, event: ClientEvent) -> list[Outcome]:
        if self.closed:
            return []
        if isinstance(event, CreateEvent):
            return self._submit(event)
        if isinstance(event, InvalidEvent):
            return [Send(event.error.ws_event())]
        if isinstance(event, SteerEvent):
            return self._steer(event)
        if isinstance(event, InterruptEvent):
            return self._interrupt(event)
        if isinstance(event, ProcessedEvent):
            return []
        raise TypeError(f"not a client event: {event!r}")

    def finished(self, lane_turn: LaneTurn) -> list[Outcome]:
        """The transport has sent the turn's last event (or gave up on it): apply the cache and
        eviction rules, free the lane, start what may start now."""
        lane = lane_turn.lane
        if lane.running is lane_turn:
            lane.running = None
            self.in_flight -= 1
        sent: list[Outcome] = []
        if lane_turn.turn is not None:
            response_id = lane_turn.turn.response_id
            self.running.pop(response_id, None)
            self.ended[response_id] = None
            while len(self.ended) > ENDED_REMEMBERED:
                self.ended.popitem(last=False)
        if not self.closed:
            self._settle(lane_turn)
            sent = self._after_steering(lane_turn)
        return sent + self._schedule() + self._limit_if_idle()

    def expire(self) -> list[Outcome]:
        """The lifetime is up: refuse new creates, let accepted ones finish, then tell the client
        why and close with 1000 (the transport bounds the wait by the shutdown grace)."""
        self.expiring = True
        self._limit_pending = True
        return self._limit_if_idle()

    def limit_reached(self) -> list[Outcome]:
        """The grace after `expire` ran out: say why and close now."""
        self._limit_pending = False
        return [Send(self._limit_error().ws_event()), Close(CLOSE_NORMAL)]

    def drain(self) -> None:
        """At shutdown: refuse new creates; the transport waits for `idle`, then closes with 1001."""
        self.expiring = True

    def close(self) -> None:
        """The socket is gone: drop every lane's cached state."""
        if self.closed:
            return
        self.closed = True
        for key in self.lanes:
            if key is not None:
                METRICS.ws_lanes.dec()
        self.cache.clear()

    # -- lanes -------------------------------------------------------------------------------
    def _submit(self, create: CreateEvent) -> list[Outcome]:
        if self.expiring:
            return [Send(self._limit_error().ws_event(create.lane))]
        lane = self.lanes.get(create.lane)
        if lane is None:
            named = len(self.lanes) - (None in self.lanes)
            if create.lane is not None and named >= self.limits.max_named_lanes:
                return [Send(self._lane_limit_error().ws_event(create.lane))]
            lane = Lane(create.lane)
            self.lanes[create.lane] = lane
            if create.lane is not None:
                METRICS.ws_lanes.inc()
        steers: list[Steer] = []
        if create.request is not None and create.previous_response_id in self.pending_steers:
            steers = self.pending_steers.pop(create.previous_response_id)
            create = _with_steering(create, steers)
        self._enqueue(lane, Waiting(0, create, steers))
        return self._schedule()

    def _enqueue(self, lane: Lane, waiting: Waiting, *, first: bool = False) -> None:
        self._arrivals += 1
        waiting.arrival = -self._arrivals if first else self._arrivals
        if first:
            lane.waiting.appendleft(waiting)
        else:
            lane.waiting.append(waiting)
        self.queued += 1
        self.queued_bytes += waiting.create.nbytes

    def _schedule(self) -> list[Outcome]:
        """Start the oldest waiting create of every free lane, oldest first, within the in-flight limit."""
        started: list[Outcome] = []
        while self.in_flight < self.limits.max_in_flight:
            ready = [lane for lane in self.lanes.values() if lane.running is None and lane.waiting]
            if not ready:
                break
            lane = min(ready, key=lambda candidate: candidate.waiting[0].arrival)
            waiting = lane.waiting.popleft()
            self.queued -= 1
            self.queued_bytes -= waiting.create.nbytes
            lane.running = LaneTurn(self, lane, waiting.create, waiting.steers)
            self.in_flight += 1
            started.append(Run(lane.running))
        return started

    def _settle(self, lane_turn: LaneTurn) -> None:
        """A success becomes its lane's latest; a failed same-lane continuation evicts its parent
        (its state may be stale); a failed fork keeps the shared parent for its own lane."""
        turn = lane_turn.turn
        if turn is not None and turn.result is not None:
            self.cache.put(lane_turn.lane.key, turn.result)
            return
        forked = lane_turn.parent is not None and lane_turn.parent.fork
        if not forked:
            self._evict_same_lane_parent(lane_turn.lane.key, lane_turn.create.previous_response_id)

    def _evict_same_lane_parent(self, lane: LaneKey, previous_id: str | None) -> None:
        if previous_id is None:
            return
        parent = self.cache.by_id.get(previous_id)
        if parent is not None and parent.lane == lane:
            self.cache.evict(previous_id, reason="failed_continuation")

    # -- interrupt and steering ----------------------------------------------------------------
    def _interrupt(self, event: InterruptEvent) -> list[Outcome]:
        response_id = event.response_id
        if event.mode not in (None, "discard_partial_items"):
            return [Send(interrupt_failed(response_id, "invalid_mode",
                                          "Unsupported interrupt mode: use 'discard_partial_items'."))]
        lane_turn = self.running.get(response_id) if isinstance(response_id, str) else None
        if lane_turn is not None and lane_turn.turn is not None and lane_turn.turn.control is not None:
            if lane_turn.turn.control.interrupt():
                return []  # the turn's own stream says `response.interrupt.accepted`, then stops
            return [Send(interrupt_failed(response_id, "response_not_active",
                                          f"Response '{response_id}' is finishing and can no longer be interrupted."))]
        if isinstance(response_id, str) and response_id in self.ended:
            return [Send(interrupt_failed(response_id, "response_already_completed",
                                          f"Response '{response_id}' has already finished."))]
        return [Send(interrupt_failed(response_id, "response_not_found",
                                      f"No response with id {response_id!r} is running on this connection."))]

    def _steer(self, event: SteerEvent) -> list[Outcome]:
        target = event.previous_response_id

        def failed(code: str, message: str, stream_id: LaneKey = None) -> list[Outcome]:
            return [Send(steer_failed(target, event.input, code, message, stream_id=stream_id))]

        if not isinstance(target, str) or not target:
            return failed("invalid_input", "'previous_response_id' must name the response to steer.")
        lane_turn = self.running.get(target)
        if lane_turn is None or lane_turn.turn is None or lane_turn.turn.control is None:
            if target in self.ended:
                return failed("response_already_completed",
                              f"Response '{target}' has completed and no longer accepts steering input.")
            return failed("response_not_found", f"Response '{target}' is not active on this connection.")
        turn, control = lane_turn.turn, lane_turn.turn.control
        lane = lane_turn.lane.key
        if not turn.request.generate:
            return failed("steering_not_supported", "A warm-up (generate: false) cannot be steered.", lane)
        if control.stop_reason == "interrupted" or (not control.generating and turn.status != "in_progress"):
            return failed("response_not_active", f"Response '{target}' no longer accepts steering input.", lane)
        if len(control.steers) >= MAX_PENDING_STEERS:
            return failed("too_many_pending_steers",
                          f"Response '{target}' already has {MAX_PENDING_STEERS} steering inputs pending.", lane)
        try:
            items = parse_steer_input(event.input)
        except APIError as exc:
            return failed("invalid_input", exc.message, lane)
        steer = Steer(target, items, event.input)
        control.steer(steer)
        if not control.generating:
            # Between generation and the terminal event: accepted now, committed by the successor.
            steer.announced = True
            assert turn.seq is not None
            return [Send(turn.seq.steer_accepted(steer.id, target))]
        return []  # the turn's own stream says `response.steer.accepted`

    def _after_steering(self, lane_turn: LaneTurn) -> list[Outcome]:
        """After a steered response's terminal event: start its successor with the queued input, or,
        when it stopped for tool output, say what the client must send first (`steer.pending`)."""
        turn = lane_turn.turn
        if turn is None or turn.control is None or not turn.control.steers:
            return []
        steers = turn.control.steers
        seq = turn.seq
        assert seq is not None
        sent: list[Outcome] = [Send(seq.steer_accepted(steer.id, turn.response_id))
                               for steer in turn.control.unannounced()]
        if turn.result is None:
            return sent + [Send(steer_failed(steer.previous_response_id, steer.raw_input, "response_not_active",
                                             f"Response '{turn.response_id}' did not finish; its steering input "
                                             "was not applied.", steer_id=steer.id, sequence_number=seq.next_number,
                                             stream_id=lane_turn.lane.key))
                           for steer in steers]
        required = _required_input(turn.result.response.get("output") or [])
        if required:
            self.pending_steers[turn.response_id] = list(steers)
            return sent + [Send(seq.steer_pending(steer.id, turn.response_id, required)) for steer in steers]
        successor = _successor(lane_turn.create, turn.response_id, steers)
        self._enqueue(lane_turn.lane, Waiting(0, successor, list(steers)), first=True)
        return sent

    # -- lifetime ----------------------------------------------------------------------------
    def _limit_if_idle(self) -> list[Outcome]:
        if self._limit_pending and self.idle:
            return self.limit_reached()
        return []

    def _limit_error(self) -> APIError:
        seconds = self.limits.lifetime_seconds
        shown = f"{seconds / 60:g} minutes" if seconds >= 60 else f"{seconds:g} seconds"
        return invalid(
            f"Responses websocket connection limit reached ({shown}). "
            "Create a new websocket connection to continue.",
            code="websocket_connection_limit_reached",
        )

    def _lane_limit_error(self) -> APIError:
        return invalid(
            "This WebSocket connection has reached its maximum number of distinct stream IDs "
            f"({self.limits.max_named_lanes}). Reuse an existing stream_id or open a new WebSocket connection.",
            "stream_id",
            code="websocket_stream_limit_reached",
        )


def _required_input(output: list[Any]) -> list[dict[str, Any]]:
    """Stubs of the tool outputs the client owes for the response's calls."""
    stubs: list[dict[str, Any]] = []
    for item in output:
        if item.get("type") == "function_call":
            stubs.append({"type": "function_call_output", "call_id": item["call_id"], "name": item["name"]})
        elif item.get("type") == "custom_tool_call":
            stubs.append({"type": "custom_tool_call_output", "call_id": item["call_id"]})
    return stubs


def _with_steering(create: CreateEvent, steers: list[Steer]) -> CreateEvent:
    """The client's continuation with the queued steering input after its own items (tool outputs
    first, so each call is still answered right after it)."""
    assert create.request is not None
    items = [*create.request.input_items, *(item for steer in steers for item in steer.items)]
    return dataclasses.replace(create, request=dataclasses.replace(create.request, input_items=items))


def _successor(create: CreateEvent, response_id: str, steers: list[Steer]) -> CreateEvent:
    """The automatic successor of a steered response: its settings, continuing from it with the input."""
    assert create.request is not None
    items = [item for steer in steers for item in steer.items]
    request = dataclasses.replace(create.request, input_items=items, previous_response_id=response_id, generate=True)
    return dataclasses.replace(create, request=request, previous_response_id=response_id, nbytes=0,
                               received_at=time.perf_counter())
