"""The round-robin placement of the scale benchmark: what a plain load balancer in front of the engine
replicas does to a conversation. Each agent keeps its whole conversation and posts it to
`/v1/chat/completions`, and its consecutive requests alternate over the replicas (the agents start
at different replicas, so the load is even). A balancer's rotation over everyone's requests gives a
conversation the replica of its previous turn only by chance (1 in M replicas); here it never does,
which keeps the comparison reproducible: with two replicas each turn finds the conversation's state of
two turns before.

The chat request is built from the Responses body with tether's own upstream rendering (same
messages, tools and settings as `--backend upstream` sends), so every placement hands the engines the
same tokens and only the placement differs. The answer comes back as a Responses-shaped object (the
output items and the engine's own usage), so the same agent loop drives every placement.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from ..api.ids import new_id
from ..api.sse import SSEDecoder
from ..api.tools import validate_tool_choice, validate_tools
from ..backends.chat_render import chat_tool_choice, chat_tools, render_items, with_system
from .clients import BenchError, TimedTurn

STALE_RETRIES = 1  # a kept-alive connection the engine closed gets one fresh try, before any byte came back


class ReplicaRotation:
    """One conversation's walk over the replicas: request k goes to replica (start + k) mod M."""

    def __init__(self, urls: Sequence[str], start: int = 0) -> None:
        if not urls:
            raise ValueError("round-robin needs at least one replica")
        self.urls = list(urls)
        self._requests = itertools.count(start)

    def next(self) -> str:
        return self.urls[next(self._requests) % len(self.urls)]


def chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions request tether's upstream backend makes of this Responses create body."""
    _, offered = validate_tools(body.get("tools") or [])
    messages: list[dict[str, Any]] = []
    render_items(messages, body["input"])
    chat: dict[str, Any] = {
        "model": body["model"],
        "messages": with_system(messages, body.get("instructions")),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if offered:
        chat["tools"] = chat_tools(offered)
        chat["tool_choice"] = chat_tool_choice(validate_tool_choice(body.get("tool_choice"), offered))
        chat["parallel_tool_calls"] = bool(body.get("parallel_tool_calls", True))
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    if body.get("temperature") is not None:
        chat["temperature"] = body["temperature"]
    return chat


@dataclass(slots=True)
class _Answer:
    """What one streamed chat completion said, gathered chunk by chunk."""

    id: str = ""
    text: str = ""
    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    first_s: float | None = None

    def feed(self, chunk: dict[str, Any], elapsed: float) -> None:
        self.id = self.id or str(chunk.get("id") or "")
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            piece = delta.get("content") or delta.get("reasoning_content")
            if (piece or delta.get("tool_calls")) and self.first_s is None:
                self.first_s = elapsed
            self.text += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                slot = self.calls.setdefault(int(call.get("index", 0)), {"id": "", "name": "", "arguments": ""})
                function = call.get("function") or {}
                slot["id"] = slot["id"] or str(call.get("id") or "")
                slot["name"] += str(function.get("name") or "")
                slot["arguments"] += str(function.get("arguments") or "")
        self.usage = chunk.get("usage") or self.usage
        self.timings = chunk.get("timings") or self.timings

    def response(self, replica: str) -> dict[str, Any]:
        """A Responses-shaped object: output items, and usage from the engine's own counters."""
        output: list[dict[str, Any]] = []
        if self.text:
            output.append({"type": "message", "role": "assistant", "status": "completed",
                           "content": [{"type": "output_text", "text": self.text, "annotations": []}]})
        for index in sorted(self.calls):
            call = self.calls[index]
            output.append({"type": "function_call", "call_id": call["id"] or new_id("call"), "name": call["name"],
                           "arguments": call["arguments"], "status": "completed"})
        prompt = self.usage.get("prompt_tokens")
        cached = (self.usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        if cached is None:  # an engine that reports its cache only in llama.cpp's timings
            cached = self.timings.get("cache_n", 0)
        if prompt is None:
            prompt = int(self.timings.get("cache_n", 0)) + int(self.timings.get("prompt_n", 0))
        completion = int(self.usage.get("completion_tokens") or self.timings.get("predicted_n") or 0)
        usage = {"input_tokens": int(prompt), "input_tokens_details": {"cached_tokens": int(cached)},
                 "output_tokens": completion, "total_tokens": int(prompt) + completion}
        return {"id": self.id or new_id("chatcmpl"), "object": "response", "status": "completed",
                "output": output, "usage": usage, "replica": replica}


class RoundRobinTransport:
    """One agent's client behind the load balancer: full history every turn, the rotation's replica."""

    def __init__(self, rotation: ReplicaRotation) -> None:
        self.rotation = rotation
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=10.0))

    async def create(self, body: dict[str, Any]) -> TimedTurn:
        content = orjson.dumps(chat_body(body))
        replica = self.rotation.next()
        for attempt in range(STALE_RETRIES + 1):
            try:
                return await self._post(replica, content)
            except _ClosedBeforeAnswer:
                if attempt == STALE_RETRIES:
                    raise BenchError(f"{replica} closed the connection before answering, twice") from None
                await self.client.aclose()
                self.client = httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=10.0))
        raise AssertionError("unreachable")

    async def _post(self, replica: str, content: bytes) -> TimedTurn:
        answer = _Answer()
        received = 0
        start = time.perf_counter()
        headers = {"Content-Type": "application/json"}
        try:
            async with self.client.stream("POST", replica + "/v1/chat/completions", content=content,
                                          headers=headers) as response:
                if response.status_code != 200:
                    raise BenchError(f"{replica} answered {response.status_code}: {(await response.aread())[:500]!r}")
                decoder = SSEDecoder()
                async for chunk in response.aiter_raw():
                    received += len(chunk)
                    for sse in decoder.feed(chunk):
                        if sse.data != "[DONE]":
                            answer.feed(orjson.loads(sse.data), time.perf_counter() - start)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ConnectError) as exc:
            if received == 0:
                raise _ClosedBeforeAnswer() from exc
            raise
        wait = time.perf_counter() - start
        return TimedTurn(answer.response(replica), wait, len(content), received, len(content), answer.first_s)

    async def close(self) -> None:
        await self.client.aclose()


class _ClosedBeforeAnswer(Exception):
    pass
