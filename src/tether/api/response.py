"""The Response object (`object: "response"`) with every field filled, and its `usage`.

A Response has fields of its own (id, status, output, usage...) and fields that echo the request
(instructions, tools, text, reasoning...). For an agent the echo is most of every lifecycle event (tens
of KB of instructions and tool definitions) and it is the same in each event of a turn, so it is built
once per request and known to the Response (`ResponseObject.echo`), for framing to serialize it once
and for a WebSocket transport to compress it once.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .items import Item
from .request import CreateRequest

_MISSING = object()


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            # tokens this turn prefilled and left in the engine's cache for the next turn
            "input_tokens_details": {
                "cached_tokens": self.cached_tokens,
                "cache_write_tokens": max(0, self.input_tokens - self.cached_tokens),
            },
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + self.output_tokens,
        }


class ResponseEcho:
    """The request's fields as a Response echoes them, and their JSON (made on first use, then kept)."""

    __slots__ = ("__weakref__", "_json", "fields")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self._json: bytes | None = None

    @property
    def json(self) -> bytes:
        """The fields as the members of a JSON object, without its braces: `"background":false,...`."""
        if self._json is None:
            self._json = orjson.dumps(self.fields)[1:-1]
        return self._json

    def holds(self, response: Mapping[str, Any]) -> bool:
        """Whether `response` still carries these very values (nobody replaced one since it was built)."""
        return all(response.get(key, _MISSING) is value for key, value in self.fields.items())


class ResponseObject(dict[str, Any]):
    """A Response: a plain dict to everything that reads, stores or serializes it, which also knows the
    echo it was built from while its request lives (a weak reference: a cached or stored response
    keeps no second copy of its instructions and tools; a copy of it is a plain dict)."""

    __slots__ = ("_echo",)

    def __init__(self, echo: ResponseEcho, **fields: Any) -> None:
        super().__init__(fields)
        self.update(echo.fields)
        self._echo = weakref.ref(echo)

    @property
    def echo(self) -> ResponseEcho | None:
        return self._echo()

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))


def request_echo(request: CreateRequest) -> ResponseEcho:
    """The echo of `request`, built on its first Response and shared by the rest."""
    echo = request.echo
    if not isinstance(echo, ResponseEcho):
        echo = request.echo = ResponseEcho(
            {
                "background": request.background,
                "frequency_penalty": request.frequency_penalty if request.frequency_penalty is not None else 0.0,
                "instructions": request.instructions,
                "max_output_tokens": request.max_output_tokens,
                "max_tool_calls": request.max_tool_calls,
                "metadata": request.metadata,
                "model": request.model,
                "parallel_tool_calls": request.parallel_tool_calls,
                "presence_penalty": request.presence_penalty if request.presence_penalty is not None else 0.0,
                "prompt_cache_key": request.prompt_cache_key,
                "prompt_cache_options": request.prompt_cache_options.echo(),
                "prompt_cache_retention": request.prompt_cache_retention,
                "reasoning": request.reasoning or {"effort": None, "summary": None},
                "safety_identifier": request.safety_identifier,
                "service_tier": "default" if request.service_tier == "auto" else request.service_tier,
                "store": request.store,
                "temperature": request.temperature if request.temperature is not None else 1.0,
                "text": request.text,
                "tool_choice": request.tool_choice_raw,
                "tools": request.tools,
                "top_logprobs": request.top_logprobs if request.top_logprobs is not None else 0,
                "top_p": request.top_p if request.top_p is not None else 1.0,
                "truncation": request.truncation,
                "user": request.user,
            }
        )
    return echo


def build_response(
    request: CreateRequest,
    response_id: str,
    created_at: int,
    *,
    status: str,
    output: list[Item] | None = None,
    usage: Usage | None = None,
    completed_at: int | None = None,
    error: dict[str, Any] | None = None,
    incomplete_reason: str | None = None,
    prompt_cache_diagnostics: dict[str, Any] | None = None,
) -> ResponseObject:
    """A full Response object; `output` is copied so later appends don't change sent events.

    Its own fields come first, then the echo (JSON key order means nothing to a client; keeping the
    echo last and whole lets framing write it as one run of bytes). `prompt_cache_diagnostics` (core's
    `cache_diagnostics`) is known once the turn's usage is: null on the events before the final one."""
    return ResponseObject(
        request_echo(request),
        id=response_id,
        object="response",
        created_at=created_at,
        status=status,
        billing={"payer": "developer"},
        completed_at=completed_at,
        conversation=None,
        error=error,
        incomplete_details={"reason": incomplete_reason} if incomplete_reason else None,
        output=list(output or []),
        previous_response_id=request.previous_response_id,
        prompt_cache_diagnostics=prompt_cache_diagnostics,
        usage=usage.to_dict() if usage is not None else None,
    )
