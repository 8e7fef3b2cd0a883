"""An in-process tether server for `tether agent` without `--server`: uvicorn in a background thread,
on a free loopback port, with the backend the serve flags name and an in-memory store."""

from __future__ import annotations

import argparse
import socket
import threading
import time

import uvicorn

from ..backends.factory import make_backend
from ..server.config import ServerConfig
from ..server.run import uvicorn_config
from ..server.state import AppState
from ..store import open_store


class EmbeddedServer:
    def __init__(self, serve_args: argparse.Namespace, *, websocket: bool = True) -> None:
        self.backend = make_backend(serve_args)
        # proto must say TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and without it
        # Nagle + delayed ACKs add ~40 ms to every response (created, then in_progress waits for an ACK).
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        config = ServerConfig(host="127.0.0.1", port=self.port, websocket=websocket)
        state = AppState.build(config, self.backend, open_store("memory"))
        self.server = uvicorn.Server(uvicorn_config(state))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="tether-embedded", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, wait_s: float = 60.0) -> EmbeddedServer:
        self.thread.start()
        deadline = time.monotonic() + wait_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the embedded tether server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
