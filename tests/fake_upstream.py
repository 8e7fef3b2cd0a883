"""A real loopback HTTP server playing an OpenAI-compatible chat-completions upstream, for tests.

It answers `POST /v1/chat/completions` with scripted replies, first in first out (streamed as SSE in
chunked encoding, or an HTTP error), records every request it receives, lists one model at
`GET /v1/models` and answers `GET /health`. A reply can also misbehave as engines do: cut the
connection mid-stream (a crash), hang before its headers, before its first event or between two
events, or close the connection without answering at all (what a kept-alive connection the engine
had already closed does to the request sent on it). `stop()` also closes every open connection, as a
killed process would. `BlackholeListener` accepts no connection at all (a connect timeout).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "fake-model"


@dataclass
class Reply:
    events: list[Any] = field(default_factory=list)  # SSE data payloads: dicts (sent as JSON) or raw strings
    status: int = 200
    error: dict[str, Any] | None = None  # the JSON body of an HTTP error
    die_after: int | None = None  # cut the connection after this many events
    done: bool = True  # end with `data: [DONE]`
    completion: dict[str, Any] | None = None  # answer with this JSON object, as a server that ignores `stream`
    stall: float = 0.0  # seconds to wait before answering (a hung engine, for timeouts)
    stall_after_headers: float = 0.0  # seconds between the headers and the first event
    stall_after: int | None = None  # with `stall_mid`: pause after this many events
    stall_mid: float = 0.0  # seconds of silence in the middle of the stream
    unanswered: bool = False  # read the request, then close the connection without a byte


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    peer: int  # the client's port: the same port means a kept-alive connection

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body["messages"])


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: dict[str, Any] | None = None,
          ) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    out: dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
                           "choices": choices}
    if usage is not None:
        out["usage"] = usage
    return out


def usage(prompt: int, completion: int, cached: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
    if cached is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def text_reply(text: str, size: int = 4, finish: str = "stop", use: dict[str, Any] | None = None) -> Reply:
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in pieces(text, size)]
    events.append(chunk({}, finish=finish))
    events.append(chunk(None, usage=use or usage(10, 5)))
    return Reply(events)


def tool_reply(calls: list[tuple[str, str]], size: int = 5, text: str = "", use: dict[str, Any] | None = None,
               ) -> Reply:
    """Tool calls streamed the way vLLM does: id and name first, then the arguments in small pieces."""
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in pieces(text, size)]
    for index, (name, arguments) in enumerate(calls):
        head = {"index": index, "id": f"chatcmpl-tool-{index}", "type": "function",
                "function": {"name": name, "arguments": ""}}
        events.append(chunk({"tool_calls": [head]}))
        for piece in pieces(arguments, size):
            events.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    events.append(chunk({}, finish="tool_calls"))
    events.append(chunk(None, usage=use or usage(20, 8)))
    return Reply(events)


def error_reply(status: int, message: str, code: Any = None) -> Reply:
    return Reply(status=status, error={"error": {"message": message, "type": "server_error", "code": code or status}})


class FakeUpstream:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Received] = []
        self.health_status = 200  # what `GET /health` answers (404: "no such endpoint")
        self.health_checks = 0
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._release = threading.Event()  # ends every stall at once (reset, stop)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-upstream", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close every open connection: from outside, a killed engine."""
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.replies.clear()
            self.requests.clear()
            self.health_status = 200
            self._release.set()
            self._release = threading.Event()

    def stall(self, seconds: float) -> None:
        """Wait (a hung engine) until `seconds` pass or the fake is reset or stopped."""
        self._release.wait(seconds)

    def _next(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            if self.replies:
                return self.replies.popleft()
        return error_reply(500, "fake upstream: no scripted reply left")


def _handler(fake: FakeUpstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # kept-alive connections, chunked streaming

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def setup(self) -> None:
            super().setup()
            with fake._lock:
                fake._connections.add(self.connection)

        def finish(self) -> None:
            with fake._lock:
                fake._connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def do_GET(self) -> None:
            if self.path == "/health":
                fake.health_checks += 1
                self._json(fake.health_status, {"status": "ok" if fake.health_status == 200 else "unavailable"})
            elif self.path == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "fake"}]})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            if self.path != "/v1/chat/completions":
                self._json(404, {"error": {"message": f"no route {self.path}"}})
                return
            reply = fake._next(Received(self.path, dict(self.headers.items()), body, self.client_address[1]))
            if reply.unanswered:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)  # the request was read: a clean close, no reset
                return
            if reply.stall:
                fake.stall(reply.stall)
            try:
                self._reply(reply)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (a timeout test)

        def _reply(self, reply: Reply) -> None:
            if reply.completion is not None:
                self._json(200, reply.completion)
                return
            if reply.status != 200:
                self._json(reply.status, reply.error)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            if reply.stall_after_headers:
                fake.stall(reply.stall_after_headers)
            for sent, event in enumerate(reply.events):
                if sent == reply.stall_after:
                    fake.stall(reply.stall_mid)
                if reply.die_after is not None and sent == reply.die_after:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self._send_chunk(event if isinstance(event, str) else json.dumps(event))
            if reply.done:
                self._send_chunk("[DONE]")
            self.wfile.write(b"0\r\n\r\n")

        def _send_chunk(self, data: str) -> None:
            frame = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(frame):x}\r\n".encode() + frame + b"\r\n")
            self.wfile.flush()

    return Handler


class BlackholeListener:
    """A loopback port that never completes a connection: its accept queue is full, so the kernel
    drops every new connection attempt and the client waits out its connect timeout."""

    def __init__(self) -> None:
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(0)
        self._fillers: list[socket.socket] = []
        for _ in range(4):  # more than a backlog of 0 admits
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(self._server.getsockname())
            self._fillers.append(filler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}"

    def close(self) -> None:
        for sock in (*self._fillers, self._server):
            sock.close()
