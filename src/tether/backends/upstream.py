"""The upstream backend: any OpenAI-compatible `/v1/chat/completions` server (vLLM, SGLang, llama.cpp's
server, Ollama) does the inference; tether keeps each conversation's chat messages.

A session holds its conversation as chat messages and renders only the items it has not seen; after
a turn it appends the assistant message the turn produced. The upstream is stateless, so every
request still carries the whole history: what a session saves is tether's own work (validation,
rendering), and a kept-alive connection to the same upstream.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import httpx
import orjson

from ..api.items import Item
from .base import Backend, BackendError, BackendSession, Delta, Finished, GenerationParams
from .chat_render import Message, chat_tool_choice, chat_tools, render_items, with_system
from .chat_stream import STREAM_DONE, ChatStreamReader, upstream_error_message
from .tokens import context_tokens, item_tokens, preamble_tokens

log = logging.getLogger("tether.upstream")

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=60.0, pool=60.0)
MODELS_TIMEOUT = 3.0
MAX_ERROR_BODY = 4096
CONTEXT_LENGTH_HINTS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "maximum context",
    "context size",
    "too many tokens",
    "prompt is too long",
)


def api_base(url: str) -> str:
    """`http://host:port`, `.../v1` or `.../v1/chat/completions` -> the `.../v1` base."""
    base = url.strip().rstrip("/")
    if base.endswith("/chat/completions"):
        base = base[: -len("/chat/completions")]
    return base if base.endswith("/v1") else base + "/v1"


def _error_code(status: int | None, message: str, upstream_code: Any = None) -> str:
    if status == 429:
        return "rate_limit_exceeded"
    text = f"{upstream_code} {message}".lower()
    if any(hint in text for hint in CONTEXT_LENGTH_HINTS):
        return "context_length_exceeded"
    return "server_error"


def _http_error(response: httpx.Response, body: bytes) -> BackendError:
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


class UpstreamSession(BackendSession):
    def __init__(self, backend: UpstreamBackend) -> None:
        super().__init__()
        self.backend = backend
        #: the conversation, without the system message (instructions are per request)
        self.messages: list[Message] = []
        self.held_tokens = 0  # an estimate of the tokens of `messages`

    def fork(self) -> UpstreamSession:
        twin = UpstreamSession(self.backend)
        twin.messages = list(self.messages)  # the message dicts are never changed in place
        twin.held_tokens = self.held_tokens
        twin.items_seen = self.items_seen
        twin.pending = list(self.pending)
        return twin

    def _render(self, items: Sequence[Item]) -> None:
        render_items(self.messages, items)
        self.held_tokens += sum(item_tokens(item) for item in items)

    async def warm(self, new_items: Sequence[Item], params: GenerationParams) -> int:
        self._render(self.take_new(new_items))
        return preamble_tokens(params.instructions, params.tools) + self.held_tokens

    async def generate(self, new_items: Sequence[Item], params: GenerationParams) -> AsyncIterator[Delta]:
        self.broken = True  # until the turn completes
        self._render(self.take_new(new_items))
        prompt_estimate = preamble_tokens(params.instructions, params.tools) + self.held_tokens
        body = self.backend.request_body(self.messages, params)
        reader = ChatStreamReader(params)
        started = time.perf_counter()
        async with contextlib.aclosing(self.backend.stream(body)) as chunks:
            async for chunk in chunks:
                for delta in reader.feed(chunk):
                    yield delta
        if not reader.done and reader.finish_reason is None:
            raise BackendError("The upstream model server's stream ended before it finished the answer.")
        for delta in reader.finish():
            yield delta
        model_seconds = time.perf_counter() - started
        output = reader.output_items()
        self._render(output)
        self.items_seen += len(output)
        usage = reader.usage
        # An upstream that reports no usage gets tether's estimate; cached tokens are never guessed.
        prompt = usage.prompt_tokens if usage.prompt_tokens is not None else prompt_estimate
        completion = usage.completion_tokens
        if completion is None:
            completion = (reader.output_chars() + 3) // 4  # tokens.approx_tokens, without building the text
        self.broken = False
        yield Finished(reader.reason, prompt, min(usage.cached_tokens, prompt), completion, model_seconds)


class UpstreamBackend(Backend):
    name = "upstream"

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        model: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = api_base(base_url)
        self.api_key = api_key
        self.model = model
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._upstream_models: list[str] = []

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=self.timeout,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64, keepalive_expiry=60.0),
            )
        return self._client

    async def start(self) -> None:
        client = self.client
        if self.model is not None:
            return
        try:  # optional: list what the upstream serves; it may not say, or not be up yet
            response = await client.get("/models", timeout=MODELS_TIMEOUT)
            response.raise_for_status()
            data = response.json().get("data") or []
            self._upstream_models = [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            log.info("could not list the upstream's models at %s/models: %s", self.base_url, exc)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def new_session(self) -> UpstreamSession:
        return UpstreamSession(self)

    def count_tokens(self, items: Sequence[Item], params: GenerationParams) -> int:
        return context_tokens(items, params.instructions, params.tools)

    def model_ids(self) -> list[str]:
        return [self.model] if self.model is not None else list(self._upstream_models)

    def request_body(self, messages: list[Message], params: GenerationParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model or params.model,
            "messages": with_system(messages, params.instructions),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if params.tools:
            body["tools"] = chat_tools(params.tools)
            body["tool_choice"] = chat_tool_choice(params.tool_choice)
            body["parallel_tool_calls"] = params.parallel_tool_calls
        if params.max_output_tokens is not None:
            body["max_tokens"] = params.max_output_tokens
        if params.temperature is not None:
            body["temperature"] = params.temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": params.json_schema},
            }
        return body

    async def stream(self, body: dict[str, Any]) -> AsyncGenerator[Any, None]:
        """POST the request; yield each decoded chunk. Every failure becomes a `BackendError`."""
        where = f"{self.base_url}/chat/completions"
        try:
            async with self.client.stream(
                "POST", "/chat/completions", content=orjson.dumps(body), headers={"Content-Type": "application/json"}
            ) as response:
                if response.status_code >= 400:
                    raise _http_error(response, (await response.aread())[:MAX_ERROR_BODY])
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    # A server that ignored `stream: true` answers with one completion object.
                    yield _json_chunk(await response.aread())
                    return
                async with contextlib.aclosing(_sse_chunks(response)) as chunks:
                    async for chunk in chunks:
                        yield chunk
        except httpx.TimeoutException as exc:
            raise BackendError(f"The upstream model server at {where} timed out ({type(exc).__name__}).") from exc
        except httpx.ConnectError as exc:
            raise BackendError(f"Could not connect to the upstream model server at {where}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise BackendError(
                f"The connection to the upstream model server at {where} failed: {exc or type(exc).__name__}"
            ) from exc


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


async def _sse_chunks(response: httpx.Response) -> AsyncGenerator[Any, None]:
    """The `data:` payloads of a server-sent event stream, decoded; `[DONE]` as `STREAM_DONE`.

    Reads the body to its end even after `[DONE]`: a response closed before its last byte cannot go
    back to the pool, and the next turn would pay for a new connection.
    """
    data: list[str] = []
    done = False
    async for line in response.aiter_lines():
        if done:
            continue
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
            continue
        if line or not data:
            continue  # comments, `event:`/`id:` fields, keep-alive blank lines
        payload = "\n".join(data)
        data = []
        done = payload.strip() == "[DONE]"
        yield STREAM_DONE if done else _decode(payload)
    if data and not done:  # the last event had no blank line after it
        payload = "\n".join(data)
        yield STREAM_DONE if payload.strip() == "[DONE]" else _decode(payload)
