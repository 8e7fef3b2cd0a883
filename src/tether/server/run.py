"""Start-up: build the backend and store, run uvicorn, and drain WebSocket connections at shutdown."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys

import uvicorn

from ..backends.base import Backend
from ..store.base import ResponseStore
from .app import create_app
from .config import ServerConfig
from .state import AppState

log = logging.getLogger("tether.server")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class TetherServer(uvicorn.Server):
    """uvicorn, plus: announce the URL once bound; at shutdown let WebSocket responses finish, close 1001."""

    def __init__(self, config: uvicorn.Config, state: AppState) -> None:
        super().__init__(config)
        self.tether = state

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(f"tether listening on {self.url}  (backend: {self.tether.backend.name})", flush=True)

    @property
    def url(self) -> str:
        port = self.config.port
        for server in self.servers:
            for sock in server.sockets:
                port = sock.getsockname()[1]
                break
        host = self.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        state = self.tether
        state.shutting_down = True
        connections = list(state.connections)
        if connections:
            await asyncio.gather(*(c.drain(state.config.shutdown_grace_seconds) for c in connections))
        await super().shutdown(sockets)


def serve(config: ServerConfig, backend: Backend, store: ResponseStore, log_level: str = "warning") -> None:
    if not config.api_keys and config.host not in LOOPBACK:
        print(
            f"WARNING: tether is listening on {config.host} with no --api-key: anyone who can reach it can use "
            "it and read what was stored.",
            file=sys.stderr,
            flush=True,
        )
    state = AppState.build(config, backend, store)
    TetherServer(uvicorn_config(state, log_level), state).run()


def uvicorn_config(state: AppState, log_level: str = "warning") -> uvicorn.Config:
    """uvicorn for tether: the sans-I/O websockets implementation (denial responses before the 101,
    permessage-deflate) and frames up to 64 MiB, as Codex's client allows."""
    config = state.config
    return uvicorn.Config(
        create_app(state),
        host=config.host,
        port=config.port,
        ws="websockets-sansio",
        ws_max_size=64 * 1024 * 1024,
        ws_per_message_deflate=True,
        log_level=log_level,
        timeout_graceful_shutdown=int(config.shutdown_grace_seconds) + 5,
        lifespan="on",
    )


