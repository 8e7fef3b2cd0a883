"""WebSocket mode on `GET /v1/responses`: the socket I/O around the turn engine.

One `WebSocketConnection` per socket: a reader that validates frames and routes `response.create` to
lanes, one worker per lane (FIFO), a connection-wide cap on responses in flight, the connection cache,
and the lifetime limit. It never builds a response event itself; it frames what the engine yields.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..api.errors import APIError, invalid, previous_response_not_found, server_error
from ..api.events import steer_failed
from ..api.framing import dumps_text
from ..api.request import CreateRequest, parse_create, validate_stream_id
from ..core.connection_cache import CacheBudget, ConnectionCache, LaneKey
from ..core.metrics import METRICS
from ..core.state import ResponseState
from .responses import error_response
from .state import AppState

log = logging.getLogger("tether.ws")
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001


@dataclass(slots=True)
class Lane:
    key: LaneKey
    queue: asyncio.Queue[tuple[dict[str, Any], float]] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None
    busy: bool = False


async def serve_websocket(state: AppState, ws: WebSocket) -> None:
    """Handshake (426 when disabled, 401 on bad auth, both before the 101), then serve the socket."""
    if not state.config.websocket or state.shutting_down:
        await ws.send_denial_response(
            error_response(APIError("WebSocket mode is disabled on this server; use HTTP.", status=426))
        )
        return
    try:
        owner = state.auth.owner(ws.headers)
    except APIError as exc:
        await ws.send_denial_response(error_response(exc))
        return
    await ws.accept()
    connection = WebSocketConnection(state, ws, owner, state.ws_budget)
    state.connections.add(connection)
    METRICS.ws_connections.inc()
    try:
        await connection.serve()
    finally:
        state.connections.discard(connection)
        METRICS.ws_connections.dec()


class WebSocketConnection:
    def __init__(self, state: AppState, ws: WebSocket, owner: str, budget: CacheBudget) -> None:
        self.state = state
        self.ws = ws
        self.owner = owner
        self.config = state.config
        self.cache = ConnectionCache(state.config.ws_cache_bytes_per_connection, budget)
        self.lanes: dict[LaneKey, Lane] = {}
        self.in_flight = asyncio.Semaphore(state.config.ws_max_in_flight)
        self._send_lock = asyncio.Lock()
        self.closed = False
        #: set at the lifetime limit and at shutdown: new creates are refused, in-flight ones finish
        self.expiring = False

    # -- sending ------------------------------------------------------------------------------
    async def send(self, event: dict[str, Any]) -> None:
        if self.closed:
            return
        async with self._send_lock:
            await self.ws.send_text(dumps_text(event))

    async def send_error(self, error: APIError, stream_id: str | None = None) -> None:
        await self.send(error.ws_event(stream_id))

    # -- the reader ---------------------------------------------------------------------------
    async def serve(self) -> None:
        lifetime = asyncio.get_running_loop().create_task(self._lifetime_limit())
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                received = time.perf_counter()
                if message.get("text") is not None:
                    await self._on_text(message["text"], received)
                elif message.get("bytes") is not None:
                    await self.send_error(
                        invalid("Binary frames are not supported: send each event as a JSON text frame.",
                                code="invalid_event")
                    )
        except WebSocketDisconnect:
            pass
        finally:
            lifetime.cancel()
            await self._shutdown_lanes()

    async def _on_text(self, text: str, received: float) -> None:
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            await self.send_error(invalid("The frame is not valid JSON.", code="invalid_json"))
            return
        if not isinstance(event, dict):
            await self.send_error(invalid("Each frame must be a JSON object with a 'type'.", code="invalid_event"))
            return
        kind = event.get("type")
        if kind == "response.create":
            await self._on_create(event, received)
        elif kind == "response.processed":
            return
        elif kind == "response.steer":
            await self._steer_not_supported(event)
        else:
            await self.send_error(
                invalid(f"Unknown event type {kind!r}. Supported: 'response.create'.", "type", code="invalid_event")
            )

    async def _steer_not_supported(self, event: dict[str, Any]) -> None:
        await self.send(steer_failed(event.get("previous_response_id"), event.get("input"), "steering_not_supported",
                                     "Steering is not supported by this server."))

    async def _on_create(self, event: dict[str, Any], received: float) -> None:
        raw_lane = event.get("stream_id")
        if self.expiring:
            await self.send_error(self._limit_error(), raw_lane if isinstance(raw_lane, str) else None)
            return
        lane_key: LaneKey = None
        if raw_lane is not None:
            try:
                lane_key = validate_stream_id(raw_lane)
            except APIError as exc:
                await self.send_error(exc)
                return
        lane = self.lanes.get(lane_key)
        if lane is None:
            named = sum(1 for key in self.lanes if key is not None)
            if lane_key is not None and named >= self.config.ws_max_named_lanes:
                await self.send_error(
                    invalid(
                        "This WebSocket connection has reached its maximum number of distinct stream IDs "
                        f"({self.config.ws_max_named_lanes}). Reuse an existing stream_id or open a new "
                        "WebSocket connection.",
                        "stream_id",
                        code="websocket_stream_limit_reached",
                    ),
                    lane_key,
                )
                return
            lane = Lane(lane_key)
            self.lanes[lane_key] = lane
            if lane_key is not None:
                METRICS.ws_lanes.inc()
            lane.worker = asyncio.get_running_loop().create_task(self._lane_worker(lane))
        lane.queue.put_nowait((event, received))

    # -- lanes --------------------------------------------------------------------------------
    async def _lane_worker(self, lane: Lane) -> None:
        while True:
            body, received = await lane.queue.get()
            async with self.in_flight:
                lane.busy = True
                try:
                    await self._run_create(lane, body, received)
                except Exception as exc:  # a socket gone mid-send, or a bug: never leave the lane stuck
                    if self.closed or isinstance(exc, WebSocketDisconnect):
                        return
                    log.exception("lane %s: create failed", lane.key)
                    await self.send_error(server_error(), lane.key)
                finally:
                    lane.busy = False

    def _evict_same_lane_parent(self, lane: Lane, previous_id: Any) -> None:
        if isinstance(previous_id, str):
            parent = self.cache.by_id.get(previous_id)
            if parent is not None and parent.lane == lane.key:
                self.cache.evict(previous_id, reason="failed_continuation")

    async def _resolve_parent(self, request: CreateRequest, lane: Lane) -> tuple[ResponseState | None, bool]:
        """(parent, is_fork): connection cache first, then the store."""
        previous = request.previous_response_id
        if previous is None:
            return None, False
        cached = self.cache.get(previous)
        if cached is not None:
            return cached, cached.lane != lane.key
        parent = await self.state.book.hydrate(previous, self.owner)
        if parent is None:
            raise previous_response_not_found(previous)
        METRICS.store_hydrations.labels(transport="ws").inc()
        return parent, False

    async def _run_create(self, lane: Lane, body: dict[str, Any], received: float) -> None:
        engine = self.state.engine
        try:
            request = parse_create(body, websocket=True)
            parent, fork = await self._resolve_parent(request, lane)
            turn = await engine.prepare(request, self.owner, parent, fork=fork, transport="ws", received_at=received)
        except APIError as exc:
            self._evict_same_lane_parent(lane, body.get("previous_response_id"))
            await self.send_error(exc, lane.key)
            return
        async with contextlib.aclosing(engine.run(turn)) as events:
            async for event in events:
                await self.send(event)
        result = turn.result
        if result is None:
            if not fork:
                self._evict_same_lane_parent(lane, request.previous_response_id)
            return
        self.cache.put(lane.key, result)

    # -- lifetime -----------------------------------------------------------------------------
    async def _lifetime_limit(self) -> None:
        """At the limit: refuse new creates, let responses in flight finish (bounded), then tell the
        client why and close with 1000, so it reconnects without losing a half-streamed answer."""
        await asyncio.sleep(self.config.ws_lifetime_seconds)
        self.expiring = True
        await self._wait_idle(self.config.shutdown_grace_seconds)
        await self.send_error(self._limit_error())
        await self.close(CLOSE_NORMAL)

    def _limit_error(self) -> APIError:
        minutes = self.config.ws_lifetime_seconds / 60
        shown = f"{minutes:g} minutes" if minutes >= 1 else f"{self.config.ws_lifetime_seconds:g} seconds"
        return invalid(
            f"Responses websocket connection limit reached ({shown}). "
            "Create a new websocket connection to continue.",
            code="websocket_connection_limit_reached",
        )

    async def _wait_idle(self, grace_seconds: float) -> None:
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline and any(
            lane.busy or not lane.queue.empty() for lane in self.lanes.values()
        ):
            await asyncio.sleep(0.02)

    async def close(self, code: int) -> None:
        if self.closed:
            return
        async with self._send_lock:
            self.closed = True
            with contextlib.suppress(Exception):
                await self.ws.close(code)

    async def drain(self, grace_seconds: float) -> None:
        """At shutdown: let responses in flight finish (up to the grace), then close with 1001."""
        self.expiring = True
        await self._wait_idle(grace_seconds)
        await self.close(CLOSE_GOING_AWAY)

    async def _shutdown_lanes(self) -> None:
        self.closed = True
        for lane in self.lanes.values():
            if lane.worker is not None:
                lane.worker.cancel()
        for lane in self.lanes.values():
            if lane.worker is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await lane.worker
            if lane.key is not None:
                METRICS.ws_lanes.dec()
        self.cache.clear()
