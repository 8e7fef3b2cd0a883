"""An in-process tether server for `tether agent` without `--server`: the server facade in a background
thread, on a free loopback port, with the backend the agent's flags name and an in-memory store."""

from __future__ import annotations

from ..backends.base import Backend
from ..backends.factory import make_backend
from ..backends.settings import BackendSettings
from ..server.config import ServerConfig
from ..server.run import TetherServer
from ..store import open_store


class EmbeddedServer:
    def __init__(self, backend: BackendSettings, *, websocket: bool = True) -> None:
        self.server = TetherServer(
            ServerConfig(host="127.0.0.1", port=0, websocket=websocket), make_backend(backend), open_store("memory"),
            announce=False,
        )

    @property
    def backend(self) -> Backend:
        return self.server.backend

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    def start(self, wait_s: float = 60.0) -> EmbeddedServer:
        self.server.start(wait_s)
        return self

    def stop(self) -> None:
        self.server.stop(15)

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
