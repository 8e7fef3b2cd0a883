"""One chat-completions request to one engine replica: the POST, its three timeouts, the one retry
of a request a stale kept-alive connection swallowed, and the answer decoded into stream chunks.

Timeouts (each names itself in the error it raises, so a `response.failed` says which one fired):
connect (opening a connection), first byte (from sending the request to the first byte of the
answer's body: queueing and prefill included) and idle (the longest pause between two chunks of the
body). They are enforced per read, never around a `yield`, so time the consumer spends writing to
its own client is not counted against the engine.

Retrying is safe only while no response byte has arrived: a pooled connection that the engine had
already closed fails with "Server disconnected without sending a response" (or a reset) before the
status line. That request is sent once more on a fresh, never-pooled connection. After the first
byte, nothing is ever retried: the engine may have started the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from ..api.sse import SSEDecoder
from .base import BackendError
from .chat_stream import STREAM_DONE, upstream_error_message

MAX_ERROR_BODY = 4096
JSON_HEADERS = {"Content-Type": "application/json"}
CONTEXT_LENGTH_HINTS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "maximum context",
    "context size",
    "too many tokens",
    "prompt is too long",
)
#: failures before the status line that mean the connection died unanswered (a stale kept-alive one)
UNANSWERED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds; see the module docstring for what each one measures."""

    connect: float = 10.0
    first_byte: float = 120.0
    idle: float = 60.0
    write: float = 60.0

    def for_httpx(self) -> httpx.Timeout:
        # Reads are timed here (first byte, idle), not by httpx, whose read timeout cannot tell them apart.
        return httpx.Timeout(connect=self.connect, read=None, write=self.write, pool=self.connect)


class UpstreamUnreachable(BackendError):
    """Nothing reached the engine or came back from it: the request may go to another replica."""


class UpstreamTimeout(BackendError):
    """One of the timeouts fired; `kind` is `connect`, `first_byte` or `idle`."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class StreamBroken(BackendError):
    """The connection failed after the answer began: never retried."""


@dataclass(frozen=True, slots=True)
class ReplicaClients:
    """The kept-alive pool of one replica, and a client that opens a new connection per request."""

    pooled: httpx.AsyncClient
    fresh: httpx.AsyncClient
    where: str  # the replica's chat-completions URL, for messages

    @staticmethod
    def open(base_url: str, api_key: str | None, timeouts: Timeouts) -> ReplicaClients:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = timeouts.for_httpx()
        pooled = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64, keepalive_expiry=60.0),
        )
        fresh = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
        )
        return ReplicaClients(pooled, fresh, f"{base_url}/chat/completions")

    async def aclose(self) -> None:
        await self.pooled.aclose()
        await self.fresh.aclose()


@dataclass(slots=True)
class Attempt:
    """What one request did, for the pool's accounting."""

    #: it was sent a second time on a fresh connection after a kept-alive one closed unanswered
    retried: bool = False


async def stream_chunks(
    clients: ReplicaClients, body: dict[str, Any], timeouts: Timeouts, attempt: Attempt
) -> AsyncGenerator[Any, None]:
    """POST `body`; yield each decoded chunk (`STREAM_DONE` for `[DONE]`). Every failure is a `BackendError`."""
    content = orjson.dumps(body)
    response, reader = await _send(clients, content, timeouts, attempt)
    try:
        if response.status_code >= 400:
            raise _http_error(response, await reader.read_all())
        if "text/event-stream" not in response.headers.get("content-type", ""):
            # A server that ignored `stream: true` answers with one completion object.
            yield _json_chunk(await reader.read_all())
            return
        async with contextlib.aclosing(_events(reader)) as chunks:
            async for chunk in chunks:
                yield chunk
    finally:
        reader.close()
        await response.aclose()


async def _send(
    clients: ReplicaClients, content: bytes, timeouts: Timeouts, attempt: Attempt
) -> tuple[httpx.Response, BodyReader]:
    """The response's status line and headers; sent once more, on a fresh connection, if none came back."""
    try:
        return await _send_on(clients.pooled, clients, content, timeouts)
    except UNANSWERED:
        attempt.retried = True
    try:
        return await _send_on(clients.fresh, clients, content, timeouts)
    except UNANSWERED as exc:
        raise UpstreamUnreachable(
            f"The upstream model server at {clients.where} closed the connection without answering, "
            f"twice: {exc or type(exc).__name__}"
        ) from exc


async def _send_on(
    client: httpx.AsyncClient, clients: ReplicaClients, content: bytes, timeouts: Timeouts
) -> tuple[httpx.Response, BodyReader]:
    request = client.build_request("POST", "/chat/completions", content=content, headers=JSON_HEADERS)
    deadline = asyncio.get_running_loop().time() + timeouts.first_byte
    try:
        async with asyncio.timeout_at(deadline):
            response = await client.send(request, stream=True)
    except TimeoutError as exc:
        raise _first_byte_timeout(clients, timeouts) from exc
    except httpx.ConnectTimeout as exc:
        raise UpstreamTimeout(
            f"Could not connect to the upstream model server at {clients.where} within {timeouts.connect:g} s "
            "(connect timeout, --upstream-connect-timeout).",
            "connect",
        ) from exc
    except httpx.ConnectError as exc:
        raise UpstreamUnreachable(f"Could not connect to the upstream model server at {clients.where}: {exc}") from exc
    except UNANSWERED:
        raise
    except httpx.HTTPError as exc:
        raise BackendError(
            f"The request to the upstream model server at {clients.where} failed: {exc or type(exc).__name__}"
        ) from exc
    return response, BodyReader(response, clients, timeouts, deadline)


def _first_byte_timeout(clients: ReplicaClients, timeouts: Timeouts) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"The upstream model server at {clients.where} sent no answer within {timeouts.first_byte:g} s "
        "(first-byte timeout, --upstream-first-byte-timeout).",
        "first_byte",
    )


def _idle_timeout(clients: ReplicaClients, timeouts: Timeouts) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"The upstream model server at {clients.where} sent nothing for {timeouts.idle:g} s in the middle of "
        "its answer (idle timeout, --upstream-idle-timeout).",
        "idle",
    )


class _ReadWatchdog:
    """Fails a read that waits past its deadline, with one timer per response instead of one per read
    (a timer per chunk would cost more than decoding the chunk). The timer wakes at the earliest
    pending deadline; a read that finished in time just moves the deadline, and the timer, when it
    wakes early, sleeps again until the current one. Only a read in progress can be failed: time the
    consumer spends between reads is never counted."""

    __slots__ = ("deadline", "fired", "handle", "loop", "task")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.task: asyncio.Task[Any] | None = None
        self.deadline: float | None = None  # of the read in progress; None between reads
        self.fired = False
        self.handle: asyncio.TimerHandle | None = None

    def arm(self, deadline: float) -> None:
        self.task = asyncio.current_task()
        self.deadline = deadline
        if self.handle is None or self.handle.when() > deadline:
            if self.handle is not None:
                self.handle.cancel()
            self.handle = self.loop.call_at(deadline, self._wake)

    def disarm(self) -> None:
        self.deadline = None

    def _wake(self) -> None:
        self.handle = None
        if self.deadline is None or self.task is None:
            return  # between reads: the next read sets the timer again
        if self.loop.time() < self.deadline:
            self.handle = self.loop.call_at(self.deadline, self._wake)
            return
        self.fired = True
        self.task.cancel()

    def claim(self) -> bool:
        """On CancelledError during a read: True if the cancellation was this watchdog's own (and
        nothing else asked to cancel the task), which it then withdraws."""
        if not self.fired or self.task is None:
            return False
        self.fired = False
        return self.task.uncancel() == 0

    def close(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


class BodyReader:
    """The response body chunk by chunk: the first read by the first-byte deadline, each later one
    within the idle timeout."""

    def __init__(self, response: httpx.Response, clients: ReplicaClients, timeouts: Timeouts, deadline: float) -> None:
        self.raw: AsyncIterator[bytes] = response.aiter_bytes()
        self.clients = clients
        self.timeouts = timeouts
        self.first_byte_deadline: float | None = deadline
        self.watchdog = _ReadWatchdog()

    async def next(self) -> bytes | None:
        """The next chunk; None at the end of the body."""
        first = self.first_byte_deadline
        self.first_byte_deadline = None
        watchdog = self.watchdog
        watchdog.arm(first if first is not None else watchdog.loop.time() + self.timeouts.idle)
        try:
            return await anext(self.raw)
        except StopAsyncIteration:
            watchdog.close()
            return None
        except asyncio.CancelledError:
            if not watchdog.claim():
                raise
            make = _first_byte_timeout if first is not None else _idle_timeout
            raise make(self.clients, self.timeouts) from None
        except httpx.HTTPError as exc:
            raise StreamBroken(
                f"The connection to the upstream model server at {self.clients.where} failed mid-answer: "
                f"{exc or type(exc).__name__}"
            ) from exc
        finally:
            watchdog.disarm()

    async def read_all(self) -> bytes:
        parts: list[bytes] = []
        while (chunk := await self.next()) is not None:
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        self.watchdog.close()


async def _events(reader: BodyReader) -> AsyncGenerator[Any, None]:
    """The `data:` payloads of the event stream, decoded; `[DONE]` as `STREAM_DONE`.

    Reads the body to its end even after `[DONE]`: a response closed before its last byte cannot go
    back to the pool, and the next turn would pay for a new connection.
    """
    decoder = SSEDecoder()
    done = False
    while (chunk := await reader.next()) is not None:
        if done:
            continue
        for event in decoder.feed(chunk):
            done = event.data.strip() == "[DONE]"
            yield STREAM_DONE if done else _decode(event.data)
            if done:
                break
    if not done:
        for event in decoder.close():  # the last event had no blank line after it
            yield STREAM_DONE if event.data.strip() == "[DONE]" else _decode(event.data)


def _decode(data: str | bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        shown = data[:200] if isinstance(data, str) else data[:200].decode(errors="replace")
        raise BackendError(f"The upstream model server sent malformed JSON: {shown!r}") from exc


def _json_chunk(body: bytes) -> Any:
    """A whole (non-streamed) completion in the shape of one stream chunk."""
    completion = _decode(body)
    if not isinstance(completion, dict):
        raise BackendError("The upstream model server sent a malformed completion.")
    choices = []
    for choice in completion.get("choices") or []:
        message = dict(choice.get("message") or {})
        calls = message.get("tool_calls") or []
        message["tool_calls"] = [{**call, "index": i} for i, call in enumerate(calls) if isinstance(call, dict)]
        finish = choice.get("finish_reason")
        choices.append({"index": choice.get("index", 0), "delta": message, "finish_reason": finish})
    return {**completion, "choices": choices}


def _error_code(status: int | None, message: str, upstream_code: Any = None) -> str:
    if status == 429:
        return "rate_limit_exceeded"
    text = f"{upstream_code} {message}".lower()
    if any(hint in text for hint in CONTEXT_LENGTH_HINTS):
        return "context_length_exceeded"
    return "server_error"


def _http_error(response: httpx.Response, body: bytes) -> BackendError:
    body = body[:MAX_ERROR_BODY]
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = body.decode(errors="replace").strip()
    message = upstream_error_message(payload) if payload else response.reason_phrase
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return BackendError(
        f"The upstream model server answered HTTP {response.status_code}: {message}",
        _error_code(response.status_code, message, code),
    )
