"""A conversation: the full item list kept locally, requests chained incrementally when they can be.

Recovery, per turn: a refused upgrade switches the client to HTTP for good; `previous_response_not_found`,
`websocket_connection_limit_reached` or a dropped socket get a fresh connection and the full context.
Because the whole history lives here, a turn never depends on the server still holding it.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

from .chain import ChainPoint, plan
from .errors import RECOVERABLE_CODES, ConnectionLost, ResponseFailed, ServerError, TetherError, UpgradeRefused
from .exchange import Exchange, OnEvent
from .http_transport import HttpTransport
from .stats import TurnReply, TurnStats
from .ws_transport import WebSocketTransport

if TYPE_CHECKING:
    from .client import AsyncTetherClient

Item = dict[str, Any]
MAX_ATTEMPTS = 3


class Conversation:
    def __init__(self, client: AsyncTetherClient, fields: dict[str, Any], on_event: OnEvent | None = None) -> None:
        self.client = client
        #: every non-input request field (model, instructions, tools, store, ...)
        self.fields = fields
        self.on_event = on_event
        #: the full context: every input item sent and every output item received, in order
        self.items: list[Item] = []
        self.turns: list[TurnReply] = []
        self._ws: WebSocketTransport | None = None
        self._connection = 0  # bumped on every new socket, so a chain never crosses sockets by accident
        self._point: ChainPoint | None = None

    @property
    def transport(self) -> str:
        return "http" if self.client.http_only else "ws"

    @property
    def last_response_id(self) -> str | None:
        return self._point.response_id if self._point else None

    async def warm_up(self) -> TurnReply | None:
        """WebSocket only: `generate: false` with the current context, so the first turn is incremental."""
        if self.client.http_only:
            return None
        try:
            await self._open_ws()
        except UpgradeRefused:
            self.client.http_only = True
            return None
        return await self._turn([], {"generate": False}, commit=False)

    async def send(self, new_items: list[Item] | str, **overrides: Any) -> TurnReply:
        """Appends `new_items` (a string is one user message), runs one response, records its output."""
        if isinstance(new_items, str):
            new_items = [{"type": "message", "role": "user", "content": new_items}]
        if "previous_response_id" in overrides or "input" in overrides:
            raise ValueError("a Conversation chains by itself: pass items to send(), not 'input' or "
                             "'previous_response_id'")
        self.fields = {**self.fields, **overrides}
        return await self._turn(list(new_items), {}, commit=True)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    # -- one turn ---------------------------------------------------------------------------
    async def _turn(self, new_items: list[Item], extra: dict[str, Any], *, commit: bool) -> TurnReply:
        full_input = self.items + new_items
        stats = TurnStats()
        started = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            connection = await self._connection_for_turn(stats)
            sent, previous = plan(self._point, self.fields, full_input, connection)
            body = {**copy.deepcopy(self.fields), **extra, "input": sent}
            if previous is not None:
                body["previous_response_id"] = previous
            stats.incremental = previous is not None
            stats.input_items_sent = len(sent)
            stats.transport = "ws" if connection is not None else "http"
            try:
                exchange = await self._request(body, stats)
            except TetherError as exc:
                self._point = None  # the server drops a chain whose continuation failed
                reason = _recoverable(exc)
                if reason is None or attempt >= MAX_ATTEMPTS:
                    raise
                stats.recoveries.append(reason)
                self._point = None  # the next attempt sends the full context on a fresh connection
                await self.close()
                continue
            break
        stats.attempts = attempt
        stats.server_wait_s = (exchange.terminal_at or time.perf_counter()) - started
        return self._finish(exchange, stats, full_input, commit=commit)

    async def _connection_for_turn(self, stats: TurnStats) -> int | None:
        """The socket's number, opening one if needed; None when the turn goes over HTTP."""
        if self.client.http_only:
            return None
        if self._ws is None:
            try:
                await self._open_ws()
            except UpgradeRefused as exc:
                stats.recoveries.append(f"upgrade refused: {exc.status or exc}")
                self.client.http_only = True
                return None
        return self._connection

    async def _open_ws(self) -> None:
        if self._ws is not None:
            return
        ws = self.client.new_ws_transport()
        await ws.open()
        self._ws = ws
        self._connection += 1

    async def _request(self, body: dict[str, Any], stats: TurnStats) -> Exchange:
        transport: WebSocketTransport | HttpTransport
        transport = self._ws if self._ws is not None and not self.client.http_only else self.client.http_transport
        try:
            return await transport.request(body, self.on_event)
        finally:
            stats.bytes_sent += transport.last_bytes_sent

    def _finish(self, exchange: Exchange, stats: TurnStats, full_input: list[Item], *, commit: bool) -> TurnReply:
        response, raw = exchange.response, exchange.response_json
        stats.first_event_s = (exchange.first_event_at - exchange.sent_at) if exchange.first_event_at else None
        stats.model_s = exchange.model_s
        if response is None or raw is None:
            raise ConnectionLost("the terminal event carried no response")
        stats.add_usage(response)
        if response.status == "failed":
            self._point = None
            message = response.error.message if response.error else "the response failed"
            raise ResponseFailed(message, response)
        output = [item for item in raw.get("output") or [] if isinstance(item, dict)]
        if response.status == "completed":
            self._point = ChainPoint(response.id, copy.deepcopy(self.fields), full_input, output,
                                     self._connection if stats.transport == "ws" else None)
        else:
            self._point = None
        if commit:
            self.items = full_input + output
        result = TurnReply(response, exchange.events, stats)
        self.turns.append(result)
        return result


def _recoverable(exc: TetherError) -> str | None:
    if isinstance(exc, ConnectionLost):
        return "connection lost"
    if isinstance(exc, ServerError) and exc.code in RECOVERABLE_CODES:
        return exc.code
    return None

