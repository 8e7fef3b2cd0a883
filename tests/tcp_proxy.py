"""A loopback TCP proxy that can swallow a request on a kept-alive connection, for tests.

In front of a real engine it forwards bytes both ways. The client's connection stays open when the
engine closes its end between two answers (llama.cpp's server often does, right after a streamed
answer): the next request goes to the engine on a new connection. So the client keeps one kept-alive
connection, and `swallow_next()` can make the proxy play the race that fails turns in front of
llama.cpp's server: the next request that arrives on an already used connection is read, and the
connection closed without a byte of answer, as if the engine had closed its idle end just as the
request came. The race itself cannot be timed in a test; its effect on the client is exactly this.
"""

from __future__ import annotations

import contextlib
import socket
import threading


def _close(sock: socket.socket | None) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class _Link:
    """One client connection and the engine connection that currently serves it."""

    def __init__(self, proxy: SwallowingProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.engine: socket.socket | None = None
        self.lock = threading.Lock()
        self.requests = 0
        self.awaiting = False  # a request was forwarded and no byte of its answer came back yet

    def run(self) -> None:
        while True:
            try:
                data = self.client.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if data.startswith((b"POST ", b"GET ")):
                self.requests += 1
                if self.proxy.take_swallow(reused=self.requests > 1):
                    break  # read, never answered: the close below is a clean FIN
                engine = self._engine()
                self.awaiting = True
            else:
                engine = self._engine()
            try:
                engine.sendall(data)
            except OSError:
                break
        with self.lock:
            _close(self.engine)
            self.engine = None
        _close(self.client)

    def _engine(self) -> socket.socket:
        with self.lock:
            if self.engine is None:
                self.engine = socket.create_connection(self.proxy.target)
                self.proxy.track(self.engine)
                threading.Thread(target=self._answers, args=(self.engine,), daemon=True).start()
            return self.engine

    def _answers(self, engine: socket.socket) -> None:
        while True:
            try:
                data = engine.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            self.awaiting = False
            try:
                self.client.sendall(data)
            except OSError:
                break
        with self.lock:
            if self.engine is engine:
                self.engine = None
        _close(engine)
        if self.awaiting:  # the engine closed with a request unanswered: so does the proxy
            _close(self.client)


class SwallowingProxy:
    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._swallow = False
        self._sockets: list[socket.socket] = []
        self.connections = 0  # client connections accepted
        self.swallowed = 0
        self._thread = threading.Thread(target=self._accept, name="swallowing-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> SwallowingProxy:
        self._thread.start()
        return self

    def swallow_next(self) -> None:
        with self._lock:
            self._swallow = True

    def take_swallow(self, *, reused: bool) -> bool:
        with self._lock:
            if self._swallow and reused:
                self._swallow = False
                self.swallowed += 1
                return True
            return False

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.connections += 1
            self.track(client)
            threading.Thread(target=_Link(self, client).run, daemon=True).start()
