"""The client: `AsyncTetherClient` (asyncio) and `TetherClient`, its synchronous wrapper.

It talks to any Responses API server: WebSocket mode on `GET {base_url}/responses` by default, HTTP with
SSE streaming when the upgrade is refused (for the rest of the client's life, as Codex does) or when
`transport="http"` is asked for.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Literal

import httpx

from .conversation import Conversation
from .exchange import OnEvent
from .http_transport import HttpTransport
from .stats import TurnReply
from .ws_transport import WebSocketTransport

Transport = Literal["ws", "http"]


class AsyncTetherClient:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000/v1",
        *,
        api_key: str | None = None,
        transport: Transport = "ws",
        connect_timeout: float = 10.0,
        event_timeout: float = 300.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        if transport not in ("ws", "http"):
            raise ValueError(f"transport must be 'ws' or 'http', not {transport!r}")
        self.base_url = base_url.rstrip("/")
        key = api_key if api_key is not None else os.environ.get("TETHER_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.headers = dict(headers or {})
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        self.connect_timeout = connect_timeout
        self.event_timeout = event_timeout
        #: True once the server refused a WebSocket upgrade (or HTTP was asked for): every turn uses HTTP
        self.http_only = transport == "http"
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(event_timeout, connect=connect_timeout))
        self.http_transport = HttpTransport(self._http, self.base_url + "/responses", self.headers, event_timeout)

    @property
    def ws_url(self) -> str:
        scheme, rest = self.base_url.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest + "/responses"

    def new_ws_transport(self) -> WebSocketTransport:
        return WebSocketTransport(self.ws_url, self.headers, self.connect_timeout, self.event_timeout)

    def conversation(
        self,
        *,
        model: str,
        instructions: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        store: bool = False,
        on_event: OnEvent | None = None,
        **fields: Any,
    ) -> Conversation:
        """A new conversation; `fields` are further request fields (tool_choice, reasoning, ...)."""
        body: dict[str, Any] = {"model": model, "store": store, **fields}
        if instructions is not None:
            body["instructions"] = instructions
        if tools is not None:
            body["tools"] = tools
        return Conversation(self, body, on_event)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncTetherClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class SyncConversation:
    """A `Conversation` driven from synchronous code through the owning `TetherClient`'s event loop."""

    def __init__(self, runner: asyncio.Runner, conversation: Conversation) -> None:
        self._runner = runner
        self.conversation = conversation

    @property
    def items(self) -> list[dict[str, Any]]:
        return self.conversation.items

    def warm_up(self) -> TurnReply | None:
        return self._runner.run(self.conversation.warm_up())

    def send(self, new_items: list[dict[str, Any]] | str, **overrides: Any) -> TurnReply:
        return self._runner.run(self.conversation.send(new_items, **overrides))

    def close(self) -> None:
        self._runner.run(self.conversation.close())


class TetherClient:
    """Synchronous: every call runs on one private event loop, so connections survive between calls."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000/v1", **options: Any) -> None:
        self._runner = asyncio.Runner()
        self._async = self._runner.run(_make(base_url, options))

    @property
    def http_only(self) -> bool:
        return self._async.http_only

    def conversation(self, *, model: str, **options: Any) -> SyncConversation:
        return SyncConversation(self._runner, self._async.conversation(model=model, **options))

    def close(self) -> None:
        self._runner.run(self._async.aclose())
        self._runner.close()

    def __enter__(self) -> TetherClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _make(base_url: str, options: dict[str, Any]) -> AsyncTetherClient:
    return AsyncTetherClient(base_url, **options)
