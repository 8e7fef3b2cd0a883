"""WebSocket mode on `GET /v1/responses`: the pump between a socket and its `ResponsesConnection`.

It reads a frame, hands the decoded event to the connection, and carries out what comes back: send an
event, run a turn (its events are sent as they come), close. Every rule (lanes, limits, the cache,
eviction, lifetime) lives in `core.connection`; this file only moves frames and runs tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from ..api.client_events import binary_frame_error, decode_client_event
from ..api.errors import APIError, server_error
from ..api.framing import encode_event
from ..core.connection import (
    CLOSE_GOING_AWAY,
    Close,
    LaneTurn,
    Outcome,
    ResponsesConnection,
    Run,
    Send,
)
from ..core.metrics import METRICS
from .responses import error_response
from .state import AppState
from .ws_handshake import upgrade_headers
from .ws_protocol import DIRECT_SEND

log = logging.getLogger("tether.ws")


async def serve_websocket(state: AppState, ws: WebSocket) -> None:
    """Handshake (426 when disabled, 401 on bad auth, both before the 101), then serve the socket."""
    if not state.config.websocket:
        await ws.send_denial_response(
            error_response(APIError("WebSocket mode is disabled on this server; use HTTP.", status=426))
        )
        return
    if state.shutting_down:
        # 503, not 426: a client retries elsewhere (another replica) instead of leaving WebSocket mode for good
        await ws.send_denial_response(error_response(APIError(
            "This server is shutting down; connect again.", status=503, type="server_error",
            code="server_is_overloaded")))
        return
    limit = state.config.max_connections
    if limit is not None and len(state.connections) >= limit:
        await ws.send_denial_response(error_response(APIError(
            f"This server is at its connection limit ({limit}); try again shortly.", status=503,
            type="server_error", code="server_is_overloaded")))
        return
    try:
        owner = state.auth.owner(ws.headers)
    except APIError as exc:
        await ws.send_denial_response(error_response(exc))
        return
    await ws.accept(headers=upgrade_headers(state.config))
    connection = ResponsesConnection(state.engine, owner, state.config.connection_limits(), state.ws_budget)
    pump = WebSocketPump(ws, connection, state.config.shutdown_grace_seconds)
    state.connections.add(pump)
    METRICS.ws_connections.inc()
    try:
        await pump.serve()
    finally:
        state.connections.discard(pump)
        METRICS.ws_connections.dec()


class WebSocketPump:
    def __init__(self, ws: WebSocket, connection: ResponsesConnection, grace_seconds: float) -> None:
        self.ws = ws
        self.connection = connection
        self.grace_seconds = grace_seconds
        self._send_lock = asyncio.Lock()
        #: tether's protocol writes a frame synchronously (`ws_protocol.DIRECT_SEND`); None under others
        self._send_frame: Callable[[bytes, int, bytes | None], None] | None = (
            ws.scope.get("extensions", {}).get(DIRECT_SEND)
        )
        self._turns: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.closed = False

    # -- reading -----------------------------------------------------------------------------
    async def serve(self) -> None:
        # A timer, not a sleeping task: an idle connection then holds no task or coroutine frame for it.
        loop = asyncio.get_running_loop()
        expiry: list[asyncio.Task[None]] = []
        timer = loop.call_later(self.connection.limits.lifetime_seconds,
                                lambda: expiry.append(loop.create_task(self._lifetime())))
        try:
            while not self.closed:
                await self._room.wait()  # backpressure: a flooding client waits in its TCP window
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                received = time.perf_counter()
                if message.get("text") is not None:
                    outcomes = self.connection.receive(decode_client_event(message["text"], received))
                elif message.get("bytes") is not None:
                    outcomes = [Send(binary_frame_error().ws_event())]
                else:
                    continue
                await self._carry_out(outcomes)
        except WebSocketDisconnect:
            pass
        finally:
            timer.cancel()
            for task in expiry:
                task.cancel()
            self.closed = True
            for task in list(self._turns):
                task.cancel()
            await asyncio.gather(*self._turns, return_exceptions=True)
            self.connection.close()

    # -- carrying out ------------------------------------------------------------------------
    async def _carry_out(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            if isinstance(outcome, Send):
                await self.send(outcome.event)
            elif isinstance(outcome, Run):
                task = asyncio.get_running_loop().create_task(self._run(outcome.turn))
                self._turns.add(task)
                task.add_done_callback(self._turns.discard)
            elif isinstance(outcome, Close):
                await self.close(outcome.code)
        self._update_flags()

    def _update_flags(self) -> None:
        if self.connection.has_room:
            self._room.set()
        else:
            self._room.clear()
        if self.connection.idle:
            self._idle.set()
        else:
            self._idle.clear()

    async def _run(self, lane_turn: LaneTurn) -> None:
        try:
            async with contextlib.aclosing(lane_turn.events()) as events:
                async for event in events:
                    await self.send(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a socket gone mid-send, or a bug: never leave the lane stuck
            if not self.closed and not isinstance(exc, WebSocketDisconnect):
                log.exception("lane %s: create failed", lane_turn.lane.key)
                with contextlib.suppress(Exception):
                    await self.send(server_error().ws_event(lane_turn.lane.key))
        finally:
            if not self.closed:
                await self._carry_out(self.connection.finished(lane_turn))
            else:
                self.connection.finished(lane_turn)
                self._update_flags()

    async def send(self, event: dict[str, Any]) -> None:
        if self.closed:
            return
        send_frame = self._send_frame
        if send_frame is not None:
            # Synchronous, so it needs no lock: nothing else can write in the middle of this frame.
            try:
                send_frame(*encode_event(event))
            except OSError:  # the peer is gone (what starlette makes of the ASGI send's error too)
                raise WebSocketDisconnect(code=1006) from None
            return
        async with self._send_lock:  # another ASGI server: its own send, which awaits
            await self.ws.send_text(encode_event(event)[0].decode())

    async def close(self, code: int) -> None:
        if self.closed:
            return
        async with self._send_lock:
            self.closed = True
            with contextlib.suppress(Exception):
                await self.ws.close(code)

    # -- lifetime and shutdown ---------------------------------------------------------------
    async def _lifetime(self) -> None:
        """At the end of the connection's lifetime: no new creates, the rest finish, then the close."""
        await self._carry_out(self.connection.expire())
        if self.closed:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.grace_seconds)
        if not self.closed:
            await self._carry_out(self.connection.limit_reached())

    async def drain(self, grace_seconds: float) -> None:
        """At shutdown: let responses in flight finish (up to the grace), then close with 1001."""
        self.connection.drain()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        await self.close(CLOSE_GOING_AWAY)
