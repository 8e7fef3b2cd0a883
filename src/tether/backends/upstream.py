"""The upstream backend: OpenAI-compatible `/v1/chat/completions` servers (vLLM, SGLang, llama.cpp's
server, Ollama) do the inference; tether keeps each conversation's chat messages.

A session holds its conversation as chat messages and renders only the items it has not seen; after
a turn the turn engine hands it the output it assembled (`commit`), which becomes the assistant's
messages. The upstream is stateless, so every request still carries the whole history: what a session
saves is tether's own work (validation, rendering), a kept-alive connection, and, with several
replicas (`upstream_pool`), the replica whose prefix cache holds the conversation.

The HTTP exchange (timeouts, the retry of a request a stale connection swallowed) is in
`upstream_http`; placement, health and failover in `upstream_pool`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from ..api.items import Item
from .base import Backend, BackendError, BackendSession, Delta, Finished, GenerationParams
from .chat_render import Message, chat_tool_choice, chat_tools, render_items, with_system
from .chat_stream import ChatStreamReader
from .tokens import context_tokens, item_tokens, preamble_tokens
from .upstream_affinity import PrefixHasher
from .upstream_http import Timeouts
from .upstream_pool import EnginePool, PoolSettings, Replica, api_base

__all__ = ["UpstreamBackend", "UpstreamSession", "api_base"]

log = logging.getLogger("tether.upstream")

MODELS_TIMEOUT = 3.0


class UpstreamSession(BackendSession):
    def __init__(self, backend: UpstreamBackend, placement_hint: str | None = None) -> None:
        super().__init__()
        self.backend = backend
        #: the conversation, without the system message (instructions are per request)
        self.messages: list[Message] = []
        self.held_tokens = 0  # an estimate of the tokens of `messages`
        # Where the conversation runs (kept by the pool): its id, the replica, the hash of its prefix.
        self.conversation: str | None = None
        self.replica: Replica | None = None
        self.placement_hint = placement_hint
        self.hasher = PrefixHasher()

    @property
    def placement(self) -> str | None:
        """The replica that holds this conversation (its URL), to record with the response."""
        return self.replica.url if self.replica is not None else self.placement_hint

    def fork(self) -> UpstreamSession:
        twin = UpstreamSession(self.backend, self.placement_hint)
        twin.messages = list(self.messages)  # the message dicts are never changed in place
        twin.held_tokens = self.held_tokens
        twin.items_seen = self.items_seen
        twin.pending = list(self.pending)
        # Same prefix, same replica: the branch reuses the prefix cache its parent built there.
        twin.conversation, twin.replica, twin.hasher = self.conversation, self.replica, self.hasher.copy()
        return twin

    def _render(self, items: Sequence[Item]) -> None:
        render_items(self.messages, items)
        self.held_tokens += sum(item_tokens(item) for item in items)

    async def warm(self, new_items: Sequence[Item], params: GenerationParams) -> int:
        self._render(self.take_new(new_items))
        return preamble_tokens(params.instructions, params.tools) + self.held_tokens

    def commit(self, output: Sequence[Item]) -> None:
        """The turn's output, as the turn engine assembled it, becomes the assistant's messages."""
        super().commit(output)
        self._render(output)
        self.backend.pool.committed(self)

    async def generate(self, new_items: Sequence[Item], params: GenerationParams) -> AsyncIterator[Delta]:
        self.broken = True  # until the turn completes
        self._render(self.take_new(new_items))
        prompt_estimate = preamble_tokens(params.instructions, params.tools) + self.held_tokens
        body = self.backend.request_body(self.messages, params)
        pool = self.backend.pool
        pool.place(self, params.prompt_cache_key)
        reader = ChatStreamReader(params)
        started = time.perf_counter()
        async with contextlib.aclosing(pool.stream(self, body)) as chunks:
            async for chunk in chunks:
                for delta in reader.feed(chunk):
                    yield delta
        if not reader.done and reader.finish_reason is None:
            raise BackendError("The upstream model server's stream ended before it finished the answer.")
        for delta in reader.finish():
            yield delta
        model_seconds = time.perf_counter() - started
        usage = reader.usage
        # An upstream that reports no usage gets tether's estimate; cached tokens are never guessed.
        prompt = usage.prompt_tokens if usage.prompt_tokens is not None else prompt_estimate
        completion = usage.completion_tokens
        if completion is None:
            completion = (reader.output_chars() + 3) // 4  # tokens.approx_tokens, without building the text
        cached = min(usage.cached_tokens, prompt)
        if self.replica is not None:
            pool.record_usage(self.replica, prompt, cached)
        self.broken = False
        yield Finished(reader.reason, prompt, cached, completion, model_seconds)


class UpstreamBackend(Backend):
    name = "upstream"

    def __init__(
        self,
        base_url: str | Sequence[str],
        api_key: str | None = None,
        model: str | None = None,
        timeouts: Timeouts | None = None,
        health_interval: float = 5.0,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        self.pool = EnginePool(urls, api_key, PoolSettings(timeouts or Timeouts(), health_interval))
        self.base_url = self.pool.replicas[0].url
        self.model = model
        self._upstream_models: list[str] = []

    async def start(self) -> None:
        await self.pool.start()
        if self.model is not None:
            return
        for replica in self.pool.replicas:  # optional: what the replicas serve; they may not say, or not be up yet
            try:
                response = await replica.clients.fresh.get("/models", timeout=MODELS_TIMEOUT)
                response.raise_for_status()
                data = response.json().get("data") or []
                self._upstream_models = [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]
                return
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                log.info("could not list the upstream's models at %s/models: %s", replica.url, exc)

    async def aclose(self) -> None:
        await self.pool.aclose()

    def new_session(self) -> UpstreamSession:
        return UpstreamSession(self)

    def session_for(self, placement: str | None) -> UpstreamSession:
        return UpstreamSession(self, placement)

    def count_tokens(self, items: Sequence[Item], params: GenerationParams) -> int:
        return context_tokens(items, params.instructions, params.tools)

    def model_ids(self) -> list[str]:
        return [self.model] if self.model is not None else list(self._upstream_models)

    def stats(self) -> dict[str, Any]:
        return self.pool.stats()

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
