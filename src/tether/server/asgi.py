"""The ASGI application tether serves: a WebSocket to `/v1/responses` goes straight to its handler
(`ws.serve_websocket`); HTTP, the lifespan and any other path go to the FastAPI app (`app.create_app`).

An open WebSocket is a suspended chain of coroutines, one frame for every layer its connection was
dispatched through, kept for the connection's whole life. FastAPI's and Starlette's middleware, router
and route put about fifteen frames in that chain and do nothing this route needs: it authenticates,
answers its own errors (before the 101 as HTTP responses, after it as events) and owns its socket.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.websockets import WebSocket

from .app import create_app
from .state import AppState
from .ws import serve_websocket

WEBSOCKET_PATH = "/v1/responses"
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class TetherApp:
    """The whole ASGI application: `http` is the FastAPI app of every HTTP route."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.http = create_app(state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == WEBSOCKET_PATH:
            await serve_websocket(self.state, WebSocket(scope, receive, send))
            return
        await self.http(scope, receive, send)
