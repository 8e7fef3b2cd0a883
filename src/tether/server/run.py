"""The server facade: `TetherServer` starts, serves, drains and stops one tether process. `tether serve`,
the agent's embedded server and the tests all run through it, so every one gets the same graceful drain:
new WebSocket creates refused, responses in flight (WebSocket and background) given the grace period,
then WebSockets closed with 1001 and unfinished background responses recorded as `cancelled`."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time

import uvicorn

from ..backends.base import Backend
from ..core.background import drain_background
from ..store.base import ResponseStore
from .asgi import TetherApp
from .config import ServerConfig
from .gc_tuning import tune_for_serving
from .limits import default_max_connections, install_exhaustion_filter, raise_fd_limit
from .state import AppState
from .workers import worker_sockets
from .ws_handshake import max_message_bytes
from .ws_protocol import protocol_for

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _Uvicorn(uvicorn.Server):
    """uvicorn, plus: announce the URL once bound; drain tether's work before uvicorn's own shutdown."""

    def __init__(self, config: uvicorn.Config, state: AppState, announce: bool) -> None:
        super().__init__(config)
        self.tether = state
        self.announce = announce
        #: this process is the server's own (`tether serve`): tune its garbage collector once started
        self.tune_gc = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.tune_gc:
            tune_for_serving()
        if self.started and self.announce:
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
        await drain(self.tether)
        await super().shutdown(sockets)


async def drain(state: AppState) -> None:
    """Refuse new WebSocket work, let what is in flight finish within the grace, then stop the rest."""
    state.shutting_down = True
    grace = state.config.shutdown_grace_seconds
    await asyncio.gather(
        *(connection.drain(grace) for connection in list(state.connections)),
        drain_background(state.book, grace),
    )


class TetherServer:
    def __init__(
        self,
        config: ServerConfig,
        backend: Backend,
        store: ResponseStore,
        *,
        log_level: str = "warning",
        announce: bool = True,
    ) -> None:
        if config.max_connections is None:
            config.max_connections = default_max_connections(raise_fd_limit())
        install_exhaustion_filter()
        self.state = AppState.build(config, backend, store)
        self.config = config
        self._uvicorn = _Uvicorn(uvicorn_config(self.state, log_level), self.state, announce)
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def backend(self) -> Backend:
        return self.state.backend

    @property
    def url(self) -> str:
        return self._uvicorn.url

    def serve(self) -> None:
        """Run in this thread until a signal asks to stop (then drain)."""
        if not self.config.api_keys and self.config.host not in LOOPBACK:
            print(
                f"WARNING: tether is listening on {self.config.host} with no --api-key: anyone who can reach it "
                "can use it and read what was stored.",
                file=sys.stderr,
                flush=True,
            )
        self._uvicorn.tune_gc = True
        self._uvicorn.run(sockets=worker_sockets())  # None unless this is one of --workers

    def start(self, wait_s: float = 60.0) -> TetherServer:
        """Run in a background thread on the configured host and port (0: a free one); returns once bound."""
        # proto must say TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and without it
        # Nagle + delayed ACKs add ~40 ms to every response (created, then in_progress waits for an ACK).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        self._socket = sock
        self._uvicorn.config.port = int(sock.getsockname()[1])
        self._thread = threading.Thread(
            target=self._uvicorn.run, kwargs={"sockets": [sock]}, name="tether-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + wait_s
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the tether server did not start")
            time.sleep(0.01)
        return self

    def stop(self, wait_s: float | None = None) -> None:
        """Ask the server to stop (it drains first) and wait for it."""
        self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(wait_s if wait_s is not None else self.config.shutdown_grace_seconds + 10)
        if self._socket is not None:
            self._socket.close()


def uvicorn_config(state: AppState, log_level: str = "warning") -> uvicorn.Config:
    """uvicorn for tether: the sans-I/O websockets implementation (denial responses before the 101,
    permessage-deflate) and one size limit for a WebSocket frame and an HTTP body."""
    config = state.config
    return uvicorn.Config(
        TetherApp(state),
        host=config.host,
        port=config.port,
        ws=protocol_for(config.ws_compression),  # uvicorn's websockets-sansio, with tether's compression
        ws_max_size=max_message_bytes(config),
        limit_concurrency=config.max_connections,
        ws_per_message_deflate=False,  # negotiated by the protocol above instead
        log_level=log_level,
        timeout_graceful_shutdown=int(config.shutdown_grace_seconds) + 5,
        lifespan="on",
    )
